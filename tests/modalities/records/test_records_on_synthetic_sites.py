"""The records modality on the synthetic federation (tests/conftest.py): labels and comorbidities as the
ground truth says despite late diagnoses, SI units at one site, a gzipped bulk file, an unknown unit."""

from __future__ import annotations

import statistics

import pytest

import privacy.fhir_scrub  # noqa: F401  (registers the de-identifier)
from modalities.records import RecordsModality, feature_names
from polyclinic.study import default_study
from polyclinic.synth import vocabulary as vocab
from privacy.deidentify import DeidContext, deidentify
from privacy.pseudonym import Pseudonymiser

PSEUDONYMS = Pseudonymiser(b"0123456789abcdef0123456789abcdef")
CREATININE = "lab:2160-0:ref-z"


@pytest.fixture(scope="module")
def featurised(federation):
    """site id -> (discovery, MRN -> feature dict with ``label`` and the named columns)."""
    root, truth = federation
    settings = default_study().records
    modality = RecordsModality(settings)
    names = feature_names(settings)
    out = {}
    for site in truth.sites:
        disc = modality.discover(root / site.id / "records")
        rows = {}
        for item in disc.items:
            ctx = DeidContext(PSEUDONYMS, PSEUDONYMS.patient(item.patient_id), settings.index_date)
            features = modality.features(deidentify("records", modality.read(item), ctx))
            rows[item.patient_id] = {"label": features["label"],
                                     **dict(zip(names, features["records"].tolist(), strict=True))}
        out[site.id] = (disc, rows)
    return out


def test_labels_and_comorbidities_match_the_truth_despite_late_diagnoses(federation, featurised):
    _, truth = federation
    late = 0
    for site in truth.sites:
        _, rows = featurised[site.id]
        assert set(rows) == {p.mrn for p in site.patients}
        for p in site.patients:
            row = rows[p.mrn]
            assert row["label"] == p.label, (site.id, p.late_target)
            for code in vocab.COMORBIDITIES:
                assert row[f"comorbidity:{vocab.SNOMED}|{code}"] == (code in p.comorbidities), (site.id, code)
            late += len(p.late_comorbidities) + p.late_target
    assert late >= 10, "the federation should hold late diagnoses for this test to mean anything"


def test_the_unknown_unit_is_rejected_where_the_truth_says(federation, featurised):
    _, truth = federation
    for site in truth.sites:
        disc, _ = featurised[site.id]
        [planted] = [b for b in site.bad_files if b.kind == "unknown-unit"]
        unknown = [r.where for r in disc.rejections if r.code == "records.unknown-unit"]
        assert unknown == [f"{planted.path}#{planted.fragment}"]


def test_creatinine_in_si_units_lands_on_the_same_scale(federation, featurised):
    _, truth = federation
    means = {site.profile: statistics.fmean(row[CREATININE] for row in featurised[site.id][1].values())
             for site in truth.sites}
    assert all(row["lab:2160-0:missing"] == 0 for row in featurised["hospital-b"][1].values())
    assert abs(means["B"] - means["A"]) < 0.6 and abs(means["B"] - means["C"]) < 0.6, means
    assert all(abs(m) < 1.5 for m in means.values()), "synthetic creatinine is healthy: near the centre"


def test_the_gzipped_bulk_file_is_read(federation, featurised):
    root, truth = federation
    assert (root / "hospital-c" / "records" / "Observation.ndjson.gz").is_file()
    disc, rows = featurised["hospital-c"]
    observations = sum(type(r).__name__ == "Observation" for i in disc.items for r in i.payload.resources)
    assert observations > len(truth.site("hospital-c").patients) * len(vocab.LABS) * 2
    assert all(row["lab:1988-5:missing"] == 0 for row in rows.values())
