"""The generative model and its signal as the files carry it: moderate per modality, in the documented
direction, clearly stronger together, and never in the data after the index date."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from polyclinic.synth import generate
from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.fhir_writer import read_resources
from polyclinic.synth.genomics_writer import SIGNATURE_DOWN, SIGNATURE_UP
from polyclinic.synth.labs import SI_UNITS
from polyclinic.synth.phantom import hounsfield, nodule_mask
from polyclinic.synth.population import CONSENT_MIX, sample_population
from polyclinic.synth.profiles import PROFILES

SIGNAL_LABS = ("1988-5", "2532-0", "2039-6")  # CRP, LDH, CEA
CEA = "2039-6"


def test_population_model_matches_its_documented_rates():
    rates = {}
    for index, profile in enumerate(PROFILES):
        patients = sample_population(profile, 3000, np.random.default_rng(index))
        labels = np.array([p.label for p in patients])
        ages = np.array([p.age for p in patients])
        smokers = np.array([p.smoker for p in patients])
        assert labels.mean() == pytest.approx(profile.prevalence, abs=0.04)
        assert labels[ages > np.median(ages)].mean() > labels[ages <= np.median(ages)].mean()
        assert labels[smokers].mean() > labels[~smokers].mean()
        assert np.mean([p.imaging == "none" for p in patients]) == pytest.approx(0.10, abs=0.02)
        consent = pd.Series([p.consent for p in patients]).value_counts(normalize=True)
        assert all(consent[k] == pytest.approx(v, abs=0.02) for k, v in CONSENT_MIX.items())
        negatives = [p for p in patients if not p.label]
        assert np.mean([p.refuted_target for p in negatives]) == pytest.approx(0.03, abs=0.015)
        assert not any(p.refuted_target for p in patients if p.label)
        for modality in ("imaging", "labs", "genomics"):
            auc = roc_auc_score(labels, [p.signals[modality] for p in patients])
            assert 0.74 < auc < 0.83, (profile.key, modality, auc)
        rates[profile.key] = pd.Series([p.race for p in patients]).value_counts(normalize=True)
    assert abs(rates["A"]["2106-3"] - rates["C"]["2106-3"]) > 0.2, "sites differ in their race mix"
    assert abs(rates["A"]["2028-9"] - rates["C"]["2028-9"]) > 0.2


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """One row per patient: site, label and each modality's signal measured from the files."""
    out: Path = tmp_path_factory.mktemp("synth-signal")
    truth = generate(out, sites=3, patients=150, seed=2)
    rows = []
    for site in truth.sites:
        labs = _latest_labs(out / site.id / "records", {p.record_id: p.mrn for p in site.patients})
        genes = _signature_scores(out / site.id, site.genomics) if site.genomics else {}
        for p in site.patients:
            area = None
            if p.imaging_files:
                area = sum(_nodule_area(out / site.id / f) for f in p.imaging_files)
            rows.append(
                {
                    "site": site.id,
                    "mrn": p.mrn,
                    "label": p.label,
                    "imaging": area,
                    "genomics": genes.get(p.mrn),
                    **labs[p.mrn],
                }
            )
    return pd.DataFrame(rows)


def _nodule_area(path: Path) -> float:
    ds = pydicom.dcmread(path)
    hu = hounsfield(
        ds.pixel_array,
        photometric=ds.PhotometricInterpretation,
        bits_stored=ds.BitsStored,
        slope=float(ds.RescaleSlope),
        intercept=float(ds.RescaleIntercept),
    )
    return float(nodule_mask(hu).sum() * float(ds.PixelSpacing[0]) ** 2)


def _latest_labs(records: Path, mrn_of: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per MRN: the latest value before the index date of each lab in the unit of vocabulary.LABS (SI
    results converted back, the result in an unknown unit left out), and the CEA after it."""
    from_si = {u.code: (lab, u.unit, u.factor) for lab, u in SI_UNITS.items()}
    found: dict[str, dict[str, tuple[str, float]]] = defaultdict(dict)
    for _, r in read_resources(records):
        if r["resourceType"] != "Observation":
            continue
        code, when = r["code"]["coding"][0]["code"], r["effectiveDateTime"]
        value, unit = r["valueQuantity"]["value"], r["valueQuantity"]["code"]
        if code in from_si and unit == from_si[code][1]:
            code, value, unit = from_si[code][0], value / from_si[code][2], vocab.LABS[from_si[code][0]][1]
        if unit != vocab.LABS[code][1]:
            continue
        key = code if when < vocab.INDEX_DATE else f"{code}-after"
        mrn = mrn_of[r["subject"]["reference"].removeprefix("Patient/")]
        if key not in found[mrn] or found[mrn][key][0] < when:
            found[mrn][key] = (when, value)
    return {mrn: {k: v for k, (_, v) in labs.items()} for mrn, labs in found.items()}


def _signature_scores(site_dir: Path, genomics: dict) -> dict[str, float]:
    """Mean of the up genes minus mean of the down genes, over the genes the site has."""
    table = pd.read_csv(site_dir / genomics["file"], sep="\t" if genomics["format"] == "tsv" else ",")
    table = table.drop_duplicates("sample_id")
    up = [g for g in SIGNATURE_UP if g in table]
    down = [g for g in SIGNATURE_DOWN if g in table]
    score = table[up].mean(axis=1) - table[down].mean(axis=1)
    return dict(zip(table[vocab.GENOMICS_PATIENT_COLUMN], score, strict=True))


def _auc(frame: pd.DataFrame, column: str) -> float:
    known = frame.dropna(subset=[column])
    return float(roc_auc_score(known["label"], known[column]))


def test_prevalence_in_the_files_is_moderate(scores):
    assert scores.groupby("site")["label"].mean().between(0.2, 0.55).all()


def test_each_modality_alone_is_a_moderate_predictor_in_the_documented_direction(scores):
    assert 0.66 < _auc(scores, "imaging") < 0.86, "positives have larger nodules"
    assert 0.66 < _auc(scores, "genomics") < 0.86, "signature up genes rise, down genes fall"
    for lab in SIGNAL_LABS:
        assert 0.6 < _auc(scores, lab) < 0.85, f"{lab} is higher in positives"
    for noise in ("6690-2", "718-7", "2160-0"):
        assert 0.38 < _auc(scores, noise) < 0.62, f"{noise} carries no signal"
    assert 0.38 < _auc(scores, f"{CEA}-after") < 0.62, "the wild post-index value carries no signal"


def _per_site_rank(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame.groupby("site")[column].transform(lambda v: rankdata(v) / len(v))


def test_modalities_together_are_clearly_better(scores):
    both = scores.dropna(subset=["imaging", "genomics"]).copy()
    for column in ("imaging", "genomics", *SIGNAL_LABS):
        both[f"r-{column}"] = _per_site_rank(both, column)
    both["labs"] = both[[f"r-{lab}" for lab in SIGNAL_LABS]].sum(axis=1)
    both["r-labs"] = _per_site_rank(both, "labs")
    both["all"] = both["r-imaging"] + both["r-labs"] + both["r-genomics"]
    single = max(_auc(both, m) for m in ("imaging", "labs", "genomics"))
    combined = _auc(both, "all")
    assert combined > 0.85 and combined > single + 0.05, (combined, single)
