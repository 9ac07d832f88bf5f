"""discover/read on real FHIR files: R4 and R5 Bundles, NDJSON bulk exports and broken inputs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from fhir.resources.consent import Consent as R5Consent
from fhir.resources.R4B.consent import Consent as R4BConsent
from fhir.resources.R4B.patient import Patient as R4BPatient

import modalities.records  # noqa: F401  (registers the modality)
from modalities.base import create_modality, modality_names
from modalities.records import REASONS, PatientRecord, RecordsModality
from modalities.records.releases import DEFAULT_RELEASE
from modalities.records.settings import RecordsSettings

DATA = Path(__file__).parents[2] / "data" / "fhir"
SETTINGS = RecordsSettings(
    target_codes=("http://hl7.org/fhir/sid/icd-10|C34",), index_date=dt.date(2025, 1, 1)
)


def discover(folder: str):
    return RecordsModality(SETTINGS).discover(DATA / folder)


def accounted(disc) -> int:
    used = sum(len(item.payload.resources) for item in disc.items)
    return used + sum(disc.skipped.values()) + len(disc.rejections)


def test_registered_and_created_by_name():
    assert "records" in modality_names()
    modality = create_modality("records", settings=SETTINGS)
    assert isinstance(modality, RecordsModality) and modality.folder == "records"


def test_r4_transaction_bundle():
    disc = discover("r4")
    assert disc.found == 10 and accounted(disc) == 10
    assert disc.skipped == {"Encounter": 1} and disc.rejections == []
    (item,) = disc.items
    assert item.patient_id == "MRN-R4-0001"  # the MR identifier, not the SSN nor Patient.id
    assert item.where == "r4/bundle-r4.json#Patient/r4-pat-1"
    assert item.payload.fhir_version == "R4B"
    record = RecordsModality(SETTINGS).read(item)
    assert isinstance(record, PatientRecord) and record.fhir_version == "R4B"
    assert (len(record.observations), len(record.conditions), len(record.consents)) == (4, 3, 1)
    assert isinstance(record.patient, R4BPatient) and isinstance(record.consents[0], R4BConsent)


def test_r5_collection_bundle_links_urn_uuid_references():
    disc = discover("r5")
    assert disc.found == 9 and accounted(disc) == 9 and disc.rejections == []
    assert disc.skipped == {"MedicationStatement": 1}
    items = {item.patient_id: item for item in disc.items}
    assert set(items) == {"MRN-R5-0002", "MRN-R5-0003"}
    record = RecordsModality(SETTINGS).read(items["MRN-R5-0002"])
    assert record.fhir_version == "R5" and isinstance(record.consents[0], R5Consent)
    assert [o.id for o in record.observations] == ["r5-obs-ldh"]
    assert [c.id for c in record.conditions] == ["r5-cond-lung"]


def test_ndjson_bulk_export_accounts_for_every_line():
    disc = discover("bulk")
    lines = sum(
        1 for f in (DATA / "bulk").glob("*.ndjson") for line in f.read_text().split("\n") if line.strip()
    )
    assert disc.found == lines == accounted(disc)
    assert {item.patient_id for item in disc.items} == {"MRN-BULK-0004", "bulk-pat-e"}  # no MR: Patient.id
    assert disc.skipped == {"Encounter": 1}
    codes = {(r.code, r.where) for r in disc.rejections}
    assert codes == {
        ("records.invalid-json", "bulk/Observation.ndjson#line=4"),
        ("records.not-fhir", "bulk/Encounter.ndjson#line=2"),
        ("records.orphan-resource", "bulk/Observation.ndjson#Observation/bulk-obs-orphan"),
    }


def test_release_decided_per_patient_in_bulk_export():
    """Patient.ndjson says nothing release-specific; the R4 Consent in Consent.ndjson decides."""
    items = {item.patient_id: item for item in discover("bulk").items}
    assert items["bulk-pat-e"].payload.fhir_version == "R4B"
    assert all(
        type(r).__module__.startswith("fhir.resources.R4B.") for r in items["bulk-pat-e"].payload.resources
    )


def test_patient_alone_takes_the_default_release(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "p.json").write_text(json.dumps({"resourceType": "Patient", "id": "solo", "gender": "male"}))
    (item,) = RecordsModality(SETTINGS).discover(folder).items
    assert item.payload.fhir_version == DEFAULT_RELEASE and item.where == "records/p.json#Patient/solo"


def test_patient_without_release_specific_content_follows_the_folder(tmp_path):
    folder = tmp_path / "records"
    shutil.copytree(DATA / "r5", folder)
    (folder / "solo.ndjson").write_text(json.dumps({"resourceType": "Patient", "id": "solo"}) + "\n")
    disc = RecordsModality(SETTINGS).discover(folder)
    assert {i.patient_id: i.payload.fhir_version for i in disc.items} == {
        "MRN-R5-0002": "R5",
        "MRN-R5-0003": "R5",
        "solo": "R5",
    }
    assert disc.notes == ["FHIR release per patient: 3 read as R5"]


def test_broken_inputs_are_rejected_with_documented_codes():
    disc = discover("broken")
    assert accounted(disc) == disc.found == 11
    by_where = {r.where: r.code for r in disc.rejections}
    assert by_where == {
        "broken/truncated.json": "records.invalid-json",
        "broken/array.json": "records.not-fhir",
        "broken/no-resource-type.json": "records.not-fhir",
        "broken/empty.json": "records.empty-file",
        "broken/notes.txt": "records.unsupported-format",
        "broken/invalid-resources.json#Patient/broken-pat-1": "records.invalid-resource",
        "broken/invalid-resources.json#Observation/broken-obs-1": "records.invalid-resource",
        "broken/invalid-resources.json#Patient/dup-2": "records.duplicate-patient",
        "broken/invalid-resources.json#Condition/orphan-cond": "records.orphan-resource",
    }
    assert all(r.code in REASONS and r.message and r.hint for r in disc.rejections)


def test_validation_errors_name_fields_but_never_input_values():
    disc = discover("broken")
    invalid = {r.where: r.message for r in disc.rejections if r.code == "records.invalid-resource"}
    assert "valueQuantity.value" in invalid["broken/invalid-resources.json#Observation/broken-obs-1"]
    assert "birthDate" in invalid["broken/invalid-resources.json#Patient/broken-pat-1"]
    for rejection in disc.rejections:
        text = rejection.message + rejection.hint
        assert "SECRET" not in text and "Johnson" not in text and "input_value" not in text


def test_duplicate_patient_keeps_the_first_and_links_references_to_either_copy():
    (item,) = discover("broken").items
    assert item.patient_id == "MRN-DUP-0009" and item.where.endswith("#Patient/dup-1")
    record = RecordsModality(SETTINGS).read(item)
    assert [c.id for c in record.conditions] == ["dup-cond"]  # it refers to the duplicate's id


def test_whole_site_fingerprints_are_per_patient(tmp_path):
    records = tmp_path / "site" / "records"
    for folder in ("r4", "r5", "bulk"):
        shutil.copytree(DATA / folder, records / "export" / folder)
    modality = RecordsModality(SETTINGS)
    before = {i.patient_id: i for i in modality.discover(records).items}
    assert len(before) == 5 and len({i.fingerprint for i in before.values()}) == 5
    assert before["MRN-R4-0001"].where == "records/export/r4/bundle-r4.json#Patient/r4-pat-1"
    obs = records / "export" / "bulk" / "Observation.ndjson"
    obs.write_text(obs.read_text().replace('"value":0.8', '"value":0.9'))
    after = {i.patient_id: i for i in modality.discover(records).items}
    changed = {p for p in before if before[p].fingerprint != after[p].fingerprint}
    assert changed == {"MRN-BULK-0004"}


def test_walk_problems_are_counted(tmp_path):
    records = tmp_path / "records"
    (records / "a").mkdir(parents=True)
    (records / "a" / "loop").symlink_to(records)
    (records / "dangling.json").symlink_to(tmp_path / "missing.json")
    disc = RecordsModality(SETTINGS).discover(records)
    assert sorted(r.code for r in disc.rejections) == ["records.symlink-loop", "records.unreadable"]
    assert disc.found == 2 == accounted(disc)


def test_missing_folder_is_an_empty_discovery(tmp_path):
    disc = RecordsModality(SETTINGS).discover(tmp_path / "records")
    assert disc.found == 0 and disc.items == [] and disc.rejections == []


def test_bad_code_tokens_fail_at_construction():
    with pytest.raises(ValueError, match=r"target-codes.*system\|code"):
        RecordsModality(RecordsSettings(target_codes=("C34",), index_date=dt.date(2025, 1, 1)))
