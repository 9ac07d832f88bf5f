"""Lab units: UCUM conversion to one unit per lab, rejection of unknown units, the fixed reference scale."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from fhir.resources.quantity import Quantity
from hypothesis import given
from hypothesis import strategies as st

import privacy.fhir_scrub  # noqa: F401  (registers the de-identifier)
from modalities.records import REASONS, RecordsModality, feature_names
from modalities.records.features import RecordFeatures
from modalities.records.lab_units import (
    LAB_REFERENCES,
    UCUM,
    canonical_value,
    reference_for,
    table_digest,
    unit_problem,
)
from modalities.records.settings import RecordsSettings
from privacy.deidentify import DeidContext, deidentify
from privacy.pseudonym import Pseudonymiser

INDEX = dt.date(2025, 1, 1)
LOINC = "http://loinc.org"
SETTINGS = RecordsSettings(
    target_codes=("http://hl7.org/fhir/sid/icd-10|C34",),
    labs=("1988-5", "2160-0", "718-7"),
    index_date=INDEX,
)
PSEUDONYMS = Pseudonymiser(b"0123456789abcdef0123456789abcdef")


def q(value: float, code: str | None, system: str | None = UCUM) -> Quantity:
    return Quantity.model_validate({"value": value, "code": code, "system": system, "unit": code})


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "canonical"),
    [
        ("2160-0", 88.4, "umol/L", 1.0),  # creatinine: 113.12 g/mol
        ("2160-0", 0.0884, "mmol/L", 1.0),
        ("2345-7", 5.5, "mmol/L", 99.09),  # glucose: 180.156 g/mol
        ("718-7", 8.7, "mmol/L", 14.02),  # haemoglobin (haem monomer)
        ("718-7", 140, "g/L", 14.0),
        ("2532-0", 3.0, "ukat/L", 180.0),
        ("1988-5", 0.72, "mg/dL", 7.2),
        ("6690-2", 7200, "/uL", 7.2),
        ("6690-2", 7.2, "10*9/L", 7.2),
    ],
)
def test_published_conversion_factors(loinc, value, unit, canonical):
    assert canonical_value(q(value, unit), LAB_REFERENCES[loinc]) == pytest.approx(canonical, rel=2e-3)


@given(
    st.sampled_from([(loinc, unit) for loinc, ref in LAB_REFERENCES.items() for unit in ref.factors]),
    st.floats(1e-3, 1e5),
)
def test_every_listed_unit_round_trips_to_the_canonical_value(lab_unit, canonical):
    loinc, unit = lab_unit
    ref = LAB_REFERENCES[loinc]
    assert canonical_value(q(canonical / ref.factors[unit], unit), ref) == pytest.approx(canonical, rel=1e-9)
    assert unit_problem(q(canonical / ref.factors[unit], unit), ref) is None


@given(st.sampled_from(sorted(LAB_REFERENCES)), st.floats(1e-3, 1e5), st.floats(1e-3, 1e5))
def test_the_scale_is_fixed_monotonic_and_centred_on_the_reference_interval(loinc, a, b):
    ref = LAB_REFERENCES[loinc]
    assert ref.factors[ref.unit] == 1.0
    assert ref.scale(ref.centre) == pytest.approx(0.0, abs=1e-12)
    assert ref.scale(ref.low) == pytest.approx(-1.959964) and ref.scale(ref.high) == pytest.approx(1.959964)
    if a < b:
        assert ref.scale(max(a, ref.centre / 100)) <= ref.scale(b)
    assert ref.scale(0.0) == ref.scale(-5.0) == ref.scale(ref.centre / 100)  # no log of zero


@pytest.mark.parametrize(
    ("quantity", "problem"),
    [
        (q(1.0, "mg/dL"), None),
        (q(1.0, "mg/dL", None), "no unit system"),
        (q(1.0, "MGDL", "http://example.org/lab-units"), "a unit outside UCUM"),
        (q(1.0, None), "no UCUM unit code"),
        (q(1.0, "nmol/L"), "a UCUM unit not listed"),
        (Quantity.model_validate({"unit": "mg/dL"}), None),  # no value: nothing to convert
    ],
)
def test_unit_problems_name_the_accepted_units(quantity, problem):
    found = unit_problem(quantity, LAB_REFERENCES["2160-0"])
    if problem is None:
        assert found is None
    else:
        assert problem in found and "mg/dL, umol/L, mmol/L" in found


def test_a_study_lab_without_a_table_entry_fails_at_start_up():
    with pytest.raises(ValueError, match=r"LOINC '99999-9' has no unit table entry.*1988-5"):
        RecordFeatures(SETTINGS.model_copy(update={"labs": ("99999-9",)}))
    assert reference_for("2160-0").also_coded == ("14682-9",)
    assert len(table_digest()) == 12


# -- end to end ----------------------------------------------------------------------------------

def _obs(rid: str, code: str, value: float, unit: str | None, when: str, system: str | None = UCUM) -> dict:
    quantity = {"value": value, "unit": unit, "code": unit, "system": system}
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "subject": {"reference": "Patient/p1"}, "code": {"coding": [{"system": LOINC, "code": code}]},
            "effectiveDateTime": when, "valueQuantity": {k: v for k, v in quantity.items() if v is not None}}


def test_results_in_other_units_are_converted_and_unknown_units_rejected(tmp_path: Path):
    root = tmp_path / "records"
    root.mkdir()
    resources = [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-05-05"},
        _obs("crp-1", "1988-5", 0.72, "mg/dL", "2024-10-01"),  # = 7.2 mg/L
        _obs("crp-2", "1988-5", 61.0, "nmol/L", "2024-12-01"),  # later, but in an unknown unit
        _obs("cre-1", "14682-9", 97.0, "umol/L", "2024-11-01"),  # the moles/volume sibling code
        _obs("cre-2", "2160-0", 1.9, "mg/dL", "2024-12-20", system=None),  # no UCUM system
        _obs("hb-1", "718-7", 8.0, "mmol/L", "2024-09-09"),
        _obs("ldh-1", "2532-0", 5.0, "ukat/L", "2024-09-09"),  # not a study lab: not checked
    ]
    (root / "chart.ndjson").write_text("".join(json.dumps(r) + "\n" for r in resources))
    modality = RecordsModality(SETTINGS)
    disc = modality.discover(root)
    rejected = sorted((r.code, r.where) for r in disc.rejections)
    assert rejected == [
        ("records.unknown-unit", "records/chart.ndjson#Observation/cre-2"),
        ("records.unknown-unit", "records/chart.ndjson#Observation/crp-2"),
    ]
    assert "records.unknown-unit" in REASONS
    assert all("61" not in r.message and "1.9" not in r.message for r in disc.rejections)
    (item,) = disc.items
    assert len(item.payload.resources) == 5 and disc.found == 7
    ctx = DeidContext(PSEUDONYMS, PSEUDONYMS.patient(item.patient_id), INDEX)
    features = modality.features(deidentify("records", modality.read(item), ctx))
    v = dict(zip(feature_names(SETTINGS), features["records"].tolist(), strict=True))
    refs = LAB_REFERENCES
    assert v["lab:1988-5:ref-z"] == pytest.approx(refs["1988-5"].scale(7.2), rel=1e-5)
    assert v["lab:2160-0:ref-z"] == pytest.approx(refs["2160-0"].scale(97.0 * 0.011312), rel=1e-5)
    assert v["lab:718-7:ref-z"] == pytest.approx(refs["718-7"].scale(8.0 * 1.61145), rel=1e-5)
    assert all(v[f"lab:{lab}:missing"] == 0 for lab in SETTINGS.labs)
    assert abs(v["lab:2160-0:ref-z"]) < 3, "creatinine in umol/L read as mg/dL would be ~ +25"
    assert math.isfinite(sum(v.values()))
