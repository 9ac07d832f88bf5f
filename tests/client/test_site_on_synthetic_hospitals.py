"""The Site on synthetic hospitals with known truth: what is used, what is rejected, and why."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pydicom
import pytest

from client.cohort import VALIDATION, CohortManifest
from client.site import Site
from polyclinic.study import default_study
from privacy.pseudonym import Pseudonymiser

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def _site(root: Path, site_id: str, state: Path) -> Site:
    return Site(root / site_id, default_study(), state, now=NOW)


def _editable_copy(root: Path, site_id: str, tmp_path: Path) -> tuple[Path, Site]:
    """A private copy of a synthetic site (the session's federation is shared and read-only)."""
    copy = tmp_path / site_id
    shutil.copytree(root / site_id, copy)
    return copy, _site(tmp_path, site_id, tmp_path / "state")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_check_matches_the_ground_truth(federation, tmp_path, index):
    root, truth = federation
    site_truth = truth.sites[index]
    site = _site(root, site_truth.id, tmp_path / "state")
    report = site.run(build_cache=False)
    pseudonymiser = Pseudonymiser.for_state(site.state)
    assert report.consent_policy == site_truth.consent_policy
    assert report.patients.discovered == len(site_truth.patients)
    expected = [p for p in site_truth.patients if p.uses_data(site_truth.consent_policy)]
    assert report.patients.included == len(expected)
    assert report.patients.positives == sum(p.label for p in expected)
    assert sum(report.patients.consent_excluded.values()) == len(site_truth.patients) - len(expected)
    with_imaging = sum(p.imaging == "series" for p in expected)
    assert report.modalities["imaging"].accepted == with_imaging
    assert sum(n for combo, n in report.patients.by_combination.items() if "imaging" in combo) == with_imaging
    assert sum(report.patients.split.values()) == len(expected)
    assert report.cache is None and not (site.state / "cache").exists()
    # every planted defect is accounted for, at the file the truth names
    where = {r.where.split("#")[0] for r in report.rejections}
    for bad in site_truth.bad_files:
        if bad.expected == "rejected":
            assert bad.path in where, bad
        else:
            assert report.modalities[bad.modality].skipped, bad
    assert pseudonymiser.patient(site_truth.patients[0].mrn).startswith("p-")


def test_prepare_caches_labels_and_masks_per_patient(federation, tmp_path):
    root, truth = federation
    site_truth = truth.sites[1]
    site = _site(root, site_truth.id, tmp_path / "state")
    report = site.run(build_cache=True)
    manifest = CohortManifest.load(site.state)
    pseudonymiser = Pseudonymiser.for_state(site.state)
    by_pseudonym = {pseudonymiser.patient(p.mrn): p for p in site_truth.patients}
    assert len(manifest.patients) == report.patients.included
    for entry in manifest.patients:
        patient = by_pseudonym[entry.pseudonym]
        assert entry.label == patient.label
        assert ("imaging" in entry.entries) == (patient.imaging == "series")
        assert ("genomics" in entry.entries) == (patient.sample_id is not None)
        assert entry.sensitive["sex"] == patient.sex
        for key in entry.entries.values():
            assert site.cache.has(key)
    assert {e.split for e in manifest.patients} == {"train", VALIDATION}
    assert report.cache.written == len(manifest.keys())


def test_cache_is_reused_then_invalidated_by_a_changed_file_and_pruned(federation, tmp_path):
    root, truth = federation
    site_truth = truth.sites[0]
    copy, site = _editable_copy(root, site_truth.id, tmp_path)
    first = site.run(build_cache=True)
    again = site.run(build_cache=True)
    assert again.cache.written == 0 and again.cache.reused == first.cache.written
    patient = next(p for p in site_truth.patients
                   if p.imaging == "series" and p.uses_data(site_truth.consent_policy))
    path = copy / patient.imaging_files[0]
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.copy()
    pixels[0, 0] += 1
    ds.PixelData = pixels.tobytes()
    ds.save_as(path)
    changed = site.run(build_cache=True)
    assert changed.cache.written == 1 and changed.cache.pruned == 1
    for relative in patient.imaging_files:
        (copy / relative).unlink()
    removed = site.run(build_cache=True)
    assert removed.cache.written == 0 and removed.cache.pruned == 1
    assert removed.patients.included == first.patients.included


def test_consent_withdrawal_excludes_the_patient_at_the_next_run(federation, tmp_path):
    root, truth = federation
    copy, site = _editable_copy(root, truth.sites[2].id, tmp_path)
    before = site.run(build_cache=True)
    consent_file = copy / "records" / "Consent.ndjson"
    consents = [json.loads(line) for line in consent_file.read_text().splitlines()]
    permit = next(c for c in consents if c["status"] == "active" and c["provision"]["type"] == "permit")
    permit["provision"]["type"] = "deny"  # an R4 Consent: the patient withdraws
    consent_file.write_text("".join(json.dumps(c) + "\n" for c in consents))
    after = site.run(build_cache=True)
    assert after.patients.included == before.patients.included - 1
    denied = "consent.denied"
    assert after.patients.consent_excluded[denied] == before.patients.consent_excluded[denied] + 1


def test_worker_processes_give_the_same_cohort_as_one_process(federation, tmp_path):
    root, truth = federation
    site_id = truth.sites[1].id
    one = _site(root, site_id, tmp_path / "one").run(build_cache=True, workers=1)
    shutil.copytree(tmp_path / "one" / "keys", tmp_path / "two" / "keys")  # same site, same pseudonyms
    two = _site(root, site_id, tmp_path / "two").run(build_cache=True, workers=2)
    assert two.counts() | {"seconds": 0} == one.counts() | {"seconds": 0}
    assert two.cache.written > 2 * 32  # enough work that two workers really ran
    one_manifest, two_manifest = CohortManifest.load(tmp_path / "one"), CohortManifest.load(tmp_path / "two")
    assert one_manifest == two_manifest


def test_the_care_purpose_skips_the_research_consent_decision_and_nothing_else(federation, tmp_path):
    root, truth = federation
    site_truth = truth.sites[0]
    research = _site(root, site_truth.id, tmp_path / "research").run(build_cache=False)
    care = Site(root / site_truth.id, default_study(), tmp_path / "care", now=NOW, purpose="care").run(
        build_cache=False)
    refusing = sum(not p.uses_data(site_truth.consent_policy) for p in site_truth.patients)
    excluded = sum(research.patients.consent_excluded.values())
    assert excluded > 0 and refusing > 0
    assert not care.patients.consent_excluded
    assert care.patients.included == research.patients.included + excluded
    assert care.patients.excluded == research.patients.excluded
