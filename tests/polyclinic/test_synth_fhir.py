"""Every synthetic FHIR resource validates with its release in fhir.resources and says what the
ground truth says."""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from fhir.resources import get_fhir_model_class as r5_model
from fhir.resources.R4B import get_fhir_model_class as r4_model
from pydantic import ValidationError

from polyclinic.synth import GroundTruth, generate
from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.fhir_writer import read_resources
from polyclinic.synth.labs import LAB_MODELS, SI_UNITS
from polyclinic.synth.record_quirks import UNKNOWN_UNIT

MODEL = {"R4": r4_model, "R5": r5_model}
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
HRESCH = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    out = tmp_path_factory.mktemp("synth-fhir")
    return out, generate(out, sites=3, patients=45, seed=11)


@pytest.fixture(scope="module")
def charts(federation) -> dict[str, dict[str, list[dict]]]:
    """site -> Patient.id -> that patient's resources."""
    out, truth = federation
    result = {}
    for site in truth.sites:
        by_patient: dict[str, list[dict]] = defaultdict(list)
        for _, resource in read_resources(out / site.id / "records"):
            key = (
                resource["id"]
                if resource["resourceType"] == "Patient"
                else resource.get("subject", resource.get("patient"))["reference"].removeprefix("Patient/")
            )
            by_patient[key].append(resource)
        result[site.id] = dict(by_patient)
    return result


def test_every_file_validates_with_its_release_and_not_the_other(federation):
    out, truth = federation
    for site in truth.sites:
        other = MODEL["R5" if site.fhir_release == "R4" else "R4"]
        rejected_by_other = 0
        for path in sorted((out / site.id / "records").iterdir()):
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            docs = (
                [json.loads(line) for line in raw.decode().splitlines()]
                if ".ndjson" in path.name
                else [json.loads(raw)]
            )
            for doc in docs:
                assert doc["resourceType"] != "Bundle" or doc["type"] == "collection"
                MODEL[site.fhir_release](doc["resourceType"]).model_validate(doc)
                try:
                    other(doc["resourceType"]).model_validate(doc)
                except ValidationError:
                    rejected_by_other += 1
        assert rejected_by_other > 0, "R4 and R5 exports should differ where the releases differ"


def test_layouts_per_site(federation):
    out, truth = federation
    names = {s.id: sorted(p.name for p in (out / s.id / "records").iterdir()) for s in truth.sites}
    assert len(names["hospital-a"]) == 45 and all(n.endswith(".json") for n in names["hospital-a"])
    assert len(names["hospital-b"]) == 2
    assert names["hospital-c"] == [
        "Condition.ndjson", "Consent.ndjson", "Encounter.ndjson", "Observation.ndjson.gz", "Patient.ndjson"
    ]
    assert (out / "hospital-c" / "records" / "Observation.ndjson.gz").read_bytes()[:2] == b"\x1f\x8b"
    for site in truth.sites:
        kinds = Counter(r["resourceType"] for _, r in read_resources(out / site.id / "records"))
        assert kinds["Patient"] == 45 and kinds["Encounter"] == 1


def test_patients_carry_the_identity_and_race_of_the_ground_truth(federation, charts):
    _, truth = federation
    for site in truth.sites:
        for p in site.patients:
            [patient] = [r for r in charts[site.id][p.record_id] if r["resourceType"] == "Patient"]
            assert (p.record_id == p.mrn) == (site.profile == "A")
            [mr] = [
                i
                for i in patient["identifier"]
                if i["type"]["coding"][0]
                == {"system": V2_0203, "code": "MR", "display": "Medical record number"}
            ]
            assert mr["value"] == p.mrn
            assert patient["name"][0] == {"use": "official", "family": p.family, "given": [p.given]}
            assert patient["birthDate"] == p.birth_date and patient["gender"] == p.sex
            assert patient["telecom"][0]["value"] == p.phone
            address = patient["address"][0]
            assert (address["line"][0], address["city"], address["postalCode"]) == tuple(p.address.values())
            [race] = [e for e in patient["extension"] if e["url"] == vocab.US_CORE_RACE]
            [omb] = [e["valueCoding"] for e in race["extension"] if e["url"] == "ombCategory"]
            assert omb["system"] == vocab.RACE_SYSTEM and omb["code"] == p.race


def test_labs_before_and_after_the_index_date(federation, charts):
    _, truth = federation
    for site in truth.sites:
        si = {lab: SI_UNITS[lab] for lab in SI_UNITS} if site.profile == "B" else {}
        expected_units = {si[c].code if c in si else c: si[c].unit if c in si else u
                          for c, (_, u) in vocab.LABS.items()}
        odd = []
        for p in site.patients:
            observations = [r for r in charts[site.id][p.record_id] if r["resourceType"] == "Observation"]
            by_lab = defaultdict(list)
            for obs in observations:
                assert obs["status"] == "final" and obs["code"]["coding"][0]["system"] == vocab.LOINC
                quantity, code = obs["valueQuantity"], obs["code"]["coding"][0]["code"]
                assert (
                    quantity["system"] == "http://unitsofmeasure.org" and quantity["code"] == quantity["unit"]
                )
                if (code, quantity["code"]) == UNKNOWN_UNIT:
                    odd.append(obs)
                    continue
                assert quantity["code"] == expected_units[code]
                by_lab[code].append((obs["effectiveDateTime"], quantity["value"]))
            assert set(by_lab) == set(expected_units)
            for code, results in by_lab.items():
                before = [v for when, v in results if when < vocab.INDEX_DATE]
                after = [v for when, v in results if when >= vocab.INDEX_DATE]
                assert len(before) in (2, 3) and len(after) == 1
                factor, lab = next(((u.factor, c) for c, u in si.items() if u.code == code), (1.0, code))
                assert after[0] / factor > 10 * LAB_MODELS[lab].median, "the post-index value is wild"
        [planted] = [b for b in site.bad_files if b.kind == "unknown-unit"]
        assert [f"Observation/{o['id']}" for o in odd] == [planted.fragment]
        assert odd[0]["effectiveDateTime"] < vocab.INDEX_DATE, "it would be used if its unit were read"


def test_one_site_reports_creatinine_in_si_units(federation, charts):
    _, truth = federation
    for site in truth.sites:
        codes = {r["code"]["coding"][0]["code"] for chart in charts[site.id].values() for r in chart
                 if r["resourceType"] == "Observation"}
        assert ("14682-9" in codes) == (site.profile == "B") and ("2160-0" in codes) == (site.profile != "B")


def _codes(condition: dict) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in condition["code"]["coding"]}


def _is_target(condition: dict) -> bool:
    return any(code == vocab.TARGET_SNOMED or code.startswith("C34.") for _, code in _codes(condition))


def test_conditions_code_the_target_the_sites_way(federation, charts):
    _, truth = federation
    expected_systems = {"A": {vocab.SNOMED}, "B": {vocab.ICD10}, "C": {vocab.SNOMED, vocab.ICD10}}
    for site in truth.sites:
        for p in site.patients:
            conditions = [r for r in charts[site.id][p.record_id] if r["resourceType"] == "Condition"]
            timely = [c for c in conditions if "recordedDate" not in c]
            assert all(c["onsetDateTime"] <= vocab.INDEX_DATE for c in timely)
            targets = [c for c in timely if _is_target(c)]
            others = {code for c in timely if c not in targets for _, code in _codes(c)}
            assert others == set(p.comorbidities)
            assert len(targets) == int(p.label or p.refuted_target)
            for target in targets:
                assert {s for s, _ in _codes(target)} == expected_systems[site.profile]
                verification = target["verificationStatus"]["coding"][0]["code"]
                assert verification == ("confirmed" if p.label else "refuted")
                assert target["clinicalStatus"]["coding"][0]["code"] == ("active" if p.label else "inactive")


def test_late_diagnoses_are_recorded_after_the_index_date_and_known_to_the_truth(federation, charts):
    _, truth = federation
    late_comorbidities = late_targets = backdated = 0
    for site in truth.sites:
        for p in site.patients:
            late = [r for r in charts[site.id][p.record_id]
                    if r["resourceType"] == "Condition" and "recordedDate" in r]
            assert all(c["recordedDate"] > vocab.INDEX_DATE for c in late)
            assert all(c["verificationStatus"]["coding"][0]["code"] == "confirmed" for c in late)
            backdated += sum(c["onsetDateTime"] <= vocab.INDEX_DATE for c in late)
            targets = [c for c in late if _is_target(c)]
            assert len(targets) == int(p.late_target) and not (p.late_target and p.label)
            codes = [code for c in late if c not in targets for _, code in _codes(c)]
            assert sorted(codes) == sorted(p.late_comorbidities) and not set(codes) & set(p.comorbidities)
            late_comorbidities += len(codes)
            late_targets += len(targets)
    assert late_comorbidities >= 10 and late_targets >= 2
    assert 0 < backdated < late_comorbidities + late_targets


def test_consent_per_patient_in_the_releases_shape(federation, charts):
    _, truth = federation
    for site in truth.sites:
        for p in site.patients:
            consents = [r for r in charts[site.id][p.record_id] if r["resourceType"] == "Consent"]
            assert len(consents) == (0 if p.consent == "none" else 1)
            if not consents:
                continue
            [c] = consents
            assert c["status"] == ("inactive" if p.consent == "inactive" else "active")
            assert c["category"][0]["coding"][0]["code"] == "59284-0"
            decision = "deny" if p.consent == "deny" else "permit"
            if site.fhir_release == "R5":
                assert c["decision"] == decision and c["subject"]["reference"] == f"Patient/{p.record_id}"
                assert {k: c["provision"][0]["purpose"][0][k] for k in HRESCH} == HRESCH
            else:
                assert (
                    c["provision"]["type"] == decision
                    and c["patient"]["reference"] == f"Patient/{p.record_id}"
                )
                assert {k: c["provision"]["purpose"][0][k] for k in HRESCH} == HRESCH
                assert c["scope"]["coding"][0]["code"] == "research" and c["policyRule"]["coding"]
