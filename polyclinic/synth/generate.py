"""``generate``: a synthetic federation of hospitals, each in its own site folder, plus the ground truth.

Every random draw comes from a stream seeded by ``(seed, site index, purpose)`` and every date is
fixed, so the same arguments give byte-identical files: tests can pin hashes, and a bug report can
name a seed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.dicom_writer import ImagingOutput, write_imaging
from polyclinic.synth.fhir_resources import FhirSite
from polyclinic.synth.fhir_writer import write_records
from polyclinic.synth.genomics_writer import baseline_expression, write_genomics
from polyclinic.synth.population import Patient, sample_population
from polyclinic.synth.profiles import SiteProfile, profile_for, site_id
from polyclinic.synth.record_quirks import RecordQuirks, plan_quirks
from polyclinic.synth.seeding import FEDERATION, stream
from polyclinic.synth.truth import GroundTruth, PatientTruth, SiteTruth

log = logging.getLogger(__name__)
GROUND_TRUTH = "ground-truth.json"
EPSILON, DELTA = 8.0, 1e-5


def site_toml(site: str, profile: SiteProfile, epsilon: float = EPSILON) -> str:
    """The site's configuration: its id, consent policy and privacy budget."""
    return (
        f'[site]\nid = "{site}"\n[consent]\npolicy = "{profile.consent_policy}"\n'
        f"[privacy]\nepsilon = {float(epsilon)}\ndelta = {DELTA:.0e}\n"
    ).replace("e-0", "e-")


def _patient_truth(
    p: Patient, imaging: ImagingOutput, sample_ids: dict[str, str], quirks: RecordQuirks
) -> PatientTruth:
    ident = p.identity
    late = quirks.late.get(p.record_id, [])
    return PatientTruth(
        mrn=ident.mrn,
        record_id=p.record_id,
        given=ident.given,
        family=ident.family,
        sex="female" if p.female else "male",
        birth_date=ident.birth_date.isoformat(),
        age=p.age,
        race=p.race,
        phone=ident.phone,
        address={
            "line": ident.address.line,
            "city": ident.address.city,
            "postal_code": ident.address.postal_code,
        },
        smoker=p.smoker,
        comorbidities=list(p.comorbidities),
        label=p.label,
        signals=dict(p.signals),
        consent=p.consent,
        refuted_target=p.refuted_target,
        nodule_mm=p.nodule_mm,
        imaging=p.imaging,
        imaging_files=imaging.files.get(ident.mrn, []),
        accession=imaging.accessions.get(ident.mrn),
        sample_id=sample_ids.get(ident.mrn),
        late_comorbidities=[d.code for d in late if d.kind == "comorbidity"],
        late_target=any(d.kind == "target" for d in late),
    )


def _site(out: Path, index: int, patients: int, seed: int, mu: np.ndarray, epsilon: float) -> SiteTruth:
    """Write one hospital folder and return its ground truth."""
    sid, profile = site_id(index), profile_for(index)
    root = out / sid
    started = time.perf_counter()
    population = sample_population(profile, patients, stream(seed, index, "population"))
    imaging = write_imaging(root / "imaging", population, profile, stream(seed, index, "imaging"))
    fhir_site = FhirSite(
        release=profile.fhir_release,
        mrn_system=f"https://{sid}.example.org/mrn",
        target_coding=profile.target_coding,
        consent_policy=profile.consent_policy,
        si_units=profile.key == "B",  # the European-style laboratory of the federation
    )
    quirks = plan_quirks(population, stream(seed, index, "records-quirks"))
    bad_records = write_records(
        root / "records",
        population,
        fhir_site,
        profile.fhir_layout,
        f"https://{sid}.example.org/fhir",
        stream(seed, index, "records"),
        quirks,
    )
    sample_ids: dict[str, str] = {}
    genomics = None
    if profile.genomics:
        sample_ids, genomics = write_genomics(
            root / "genomics", population, profile, mu, stream(seed, index, "genomics")
        )
    (root / "site.toml").write_text(site_toml(sid, profile, epsilon), encoding="utf-8")
    log.info(
        "synthetic site %s (profile %s): %d patients in %.1f s",
        sid,
        profile.key,
        patients,
        time.perf_counter() - started,
    )
    return SiteTruth(
        id=sid,
        profile=profile.key,
        consent_policy=profile.consent_policy,
        fhir_release=profile.fhir_release,
        prevalence=profile.prevalence,
        patients=[_patient_truth(p, imaging, sample_ids, quirks) for p in population],
        bad_files=imaging.bad_files + bad_records,
        genomics=genomics,
    )


def generate(out: Path, *, sites: int = 3, patients: int = 120, seed: int = 0,
             epsilon: float = EPSILON) -> GroundTruth:
    """Write ``sites`` hospital folders (``OUT/hospital-a`` ...) and ``OUT/ground-truth.json``; every
    site's privacy budget is ``epsilon`` (delta 1e-5).

    Refuses to write into a site folder that already has content, so stale files from an earlier
    run can never mix with new ones.
    """
    if sites < 1:
        raise ValueError(f"sites must be at least 1, got {sites}")
    if patients < 2:
        raise ValueError(f"patients must be at least 2 per site (bad files need carriers), got {patients}")
    out = Path(out)
    for index in range(sites):
        folder = out / site_id(index)
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(
                f"{folder} already exists and is not empty; "
                "choose an empty output folder or remove the old synthetic sites"
            )
    out.mkdir(parents=True, exist_ok=True)
    mu = baseline_expression(stream(seed, FEDERATION, "genes"))
    truth = GroundTruth(
        seed=seed,
        index_date=vocab.INDEX_DATE,
        sites=[_site(out, index, patients, seed, mu, epsilon) for index in range(sites)],
    )
    truth.dump(out / GROUND_TRUTH)
    return truth
