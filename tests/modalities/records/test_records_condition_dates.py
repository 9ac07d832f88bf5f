"""Conditions count only when known by the index date: onset[x], recordedDate and abatement[x], R4 and R5."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fhir.resources.condition import Condition as R5Condition
from fhir.resources.R4B.condition import Condition as R4BCondition
from hypothesis import given, settings
from hypothesis import strategies as st

import privacy.fhir_scrub  # noqa: F401  (registers the de-identifier)
from modalities.records import RecordsModality, feature_names
from modalities.records.condition_dates import known_by_index
from modalities.records.settings import RecordsSettings
from privacy.deidentify import DeidContext, deidentify
from privacy.pseudonym import Pseudonymiser

INDEX = dt.date(2025, 1, 1)
SNOMED, ICD10 = "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10"
COPD, DM2, HTN = "13645005", "44054006", "38341003"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
MODELS = {"R4": R4BCondition, "R5": R5Condition}


def condition(release: str = "R5", code: str = COPD, system: str = SNOMED, **dates) -> object:
    data = {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        **dates,
    }
    return MODELS[release].model_validate(data)


def age(value: float, code: str = "a") -> dict:
    return {"value": value, "system": "http://unitsofmeasure.org", "code": code}


CASES = [
    ({"onsetDateTime": "2024-12-31T23:00:00+00:00"}, True),
    ({"onsetDateTime": "2025-01-01"}, True),  # on the index date
    ({"onsetDateTime": "2025-01-02"}, False),
    ({"onsetDateTime": "2024"}, True),
    ({"onsetDateTime": "2025"}, False),  # may be after the index date
    ({"onsetDateTime": "2024-12"}, True),
    ({"recordedDate": "2024-06-01"}, True),
    ({"recordedDate": "2025-03-01"}, False),
    ({"onsetDateTime": "2020-01-01", "recordedDate": "2025-03-01"}, False),  # back-dated after the fact
    ({"onsetDateTime": "2025-02-01", "recordedDate": "2024-12-01"}, False),  # onset after the index date
    ({"onsetDateTime": "2020-01-01", "recordedDate": "2020-01-05"}, True),
    ({"onsetPeriod": {"start": "2024-11-01", "end": "2025-02-01"}}, True),
    ({"onsetPeriod": {"start": "2025-01-05"}}, False),
    ({"onsetPeriod": {"end": "2024-10-01"}}, True),
    ({"onsetAge": age(50)}, True),  # age 70 at the index date
    ({"onsetAge": age(71)}, False),
    ({"onsetAge": age(839, "mo")}, True),
    ({"onsetAge": age(841, "mo")}, False),
    ({"onsetRange": {"low": age(60), "high": age(65)}}, True),
    ({"onsetRange": {"low": age(60), "high": age(75)}}, False),  # may have begun after the index date
    ({"abatementDateTime": "2023-05-01"}, True),  # a history of the condition
    ({"abatementDateTime": "2025-05-01"}, None),  # says nothing about when it began
    ({"abatementAge": age(60)}, True),
    ({"onsetString": "in childhood"}, None),
    ({}, None),
]


@pytest.mark.parametrize("release", ["R4", "R5"])
@pytest.mark.parametrize(("dates", "known"), CASES)
def test_when_a_condition_was_known(release, dates, known):
    assert known_by_index(condition(release, **dates), INDEX, 70.0) is known


def test_an_age_needs_the_age_at_the_index_date_and_a_time_unit():
    assert known_by_index(condition(onsetAge=age(50)), INDEX, None) is None
    assert known_by_index(condition(onsetAge=age(50, "kg")), INDEX, 70.0) is None


DAYS = st.dates(dt.date(2015, 1, 1), dt.date(2030, 12, 31))
PARTIAL = DAYS.flatmap(lambda d: st.sampled_from([d.isoformat(), d.isoformat()[:7], d.isoformat()[:4]]))


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries({}, optional={"onsetDateTime": PARTIAL, "recordedDate": PARTIAL,
                                        "abatementDateTime": PARTIAL}),
    DAYS,
    st.integers(0, 4000),
    st.sampled_from(["R4", "R5"]),
)
def test_a_later_index_date_never_forgets_a_condition(dates, index, days, release):
    """Known by one index date means known by every later one; and a dated condition is decided."""
    model = condition(release, **dates)
    earlier = known_by_index(model, index, None)
    later = known_by_index(model, index + dt.timedelta(days), None)
    if earlier:
        assert later is True
    if "onsetDateTime" in dates or "recordedDate" in dates:
        assert earlier is not None


# -- end to end: discover, de-identify, features -----------------------------------------------------

SETTINGS = RecordsSettings(
    target_codes=(f"{SNOMED}|363358000", f"{ICD10}|C34"),
    comorbidities=(f"{SNOMED}|{COPD}", f"{SNOMED}|{DM2}", f"{SNOMED}|{HTN}"),
    index_date=INDEX,
)
PSEUDONYMS = Pseudonymiser(b"0123456789abcdef0123456789abcdef")


def _patient_bundle(release: str, conditions: list[dict]) -> dict:
    for number, c in enumerate(conditions):
        c.update(resourceType="Condition", id=f"c{number}", subject={"reference": "Patient/p1"},
                 clinicalStatus={"coding": [{"system": CLINICAL, "code": "active"}]})
        if release == "R4":
            c["asserter"] = {"reference": "Practitioner/x"}  # R4-only: decides the release
        else:
            c["participant"] = [{"actor": {"reference": "Practitioner/x"}}]  # R5-only
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1955-01-01", "gender": "male"}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (patient, *conditions)]}


def featurised(tmp_path: Path, release: str, conditions: list[dict]) -> tuple[dict, list[str]]:
    root = tmp_path / release / "records"
    root.mkdir(parents=True)
    (root / "chart.json").write_text(json.dumps(_patient_bundle(release, conditions)))
    modality = RecordsModality(SETTINGS)
    disc = modality.discover(root)
    (item,) = disc.items
    assert item.payload.fhir_version == ("R4B" if release == "R4" else "R5")
    ctx = DeidContext(PSEUDONYMS, PSEUDONYMS.patient(item.patient_id), INDEX)
    features = modality.features(deidentify("records", modality.read(item), ctx))
    vector = dict(zip(feature_names(SETTINGS), features["records"].tolist(), strict=True))
    return {"label": features["label"], **vector}, disc.notes


def _coded(system: str, code: str, **dates) -> dict:
    return {"code": {"coding": [{"system": system, "code": code}]}, **dates}


@pytest.mark.parametrize("release", ["R4", "R5"])
def test_late_diagnoses_count_for_neither_features_nor_label(tmp_path, release):
    v, notes = featurised(tmp_path, release, [
        _coded(SNOMED, COPD, onsetDateTime="2018-04-02"),
        _coded(SNOMED, DM2, onsetDateTime="2025-02-10", recordedDate="2025-02-10"),
        _coded(SNOMED, HTN, onsetDateTime="2022", recordedDate="2025-03-01"),  # back-dated
        _coded(ICD10, "C34.1", onsetPeriod={"start": "2025-01-20"}, recordedDate="2025-01-25"),
    ])
    assert v[f"comorbidity:{SNOMED}|{COPD}"] == 1
    assert v[f"comorbidity:{SNOMED}|{DM2}"] == 0 and v[f"comorbidity:{SNOMED}|{HTN}"] == 0
    assert v["label"] == 0
    assert not any("no onset" in note for note in notes)


@pytest.mark.parametrize("release", ["R4", "R5"])
def test_onset_age_abatement_and_undated_conditions(tmp_path, release):
    v, notes = featurised(tmp_path, release, [
        _coded(SNOMED, COPD, onsetAge=age(60)),  # age 70 at the index date: the scrubber keeps onsetAge
        _coded(SNOMED, DM2, abatementDateTime="2021-06-01"),
        _coded(SNOMED, HTN),  # no date at all: not counted, and the steward is told
        _coded(ICD10, "C34.9", recordedDate="2024-12-01"),
    ])
    assert v[f"comorbidity:{SNOMED}|{COPD}"] == 1 and v[f"comorbidity:{SNOMED}|{DM2}"] == 1
    assert v[f"comorbidity:{SNOMED}|{HTN}"] == 0
    assert v["label"] == 1
    assert any(note.startswith("1 Condition(s) with a study code carry no onset") for note in notes)
