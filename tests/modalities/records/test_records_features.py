"""Features of de-identified records: layout, labs before the index date, labels, sensitive attributes."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from fhir.resources.R4B.coding import Coding

import privacy.fhir_scrub  # noqa: F401  (registers the de-identifier)
from modalities.base import ItemRejected
from modalities.records import RecordsModality, feature_names
from modalities.records.codes import CodeToken
from modalities.records.lab_units import LAB_REFERENCES
from modalities.records.settings import RecordsSettings
from privacy.deidentify import DeidContext, deidentify
from privacy.pseudonym import Pseudonymiser

DATA = Path(__file__).parents[2] / "data" / "fhir"
SNOMED, ICD10 = "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10"
SETTINGS = RecordsSettings(
    target_codes=(f"{SNOMED}|363358000", f"{ICD10}|C34"),
    labs=("718-7", "1988-5", "2532-0", "6690-2"),
    comorbidities=(f"{SNOMED}|13645005", f"{SNOMED}|44054006"),
    index_date=dt.date(2025, 1, 1),
)
PSEUDONYMS = Pseudonymiser(b"0123456789abcdef0123456789abcdef")


def z(loinc: str, value: float) -> float:
    """The documented scale, written out: (ln value - ln centre) / spread of the reference interval."""
    ref = LAB_REFERENCES[loinc]
    return (math.log(value) - 0.5 * math.log(ref.low * ref.high)) / (math.log(ref.high / ref.low) / 3.919928)


def featurised(folder: str, settings: RecordsSettings = SETTINGS) -> dict[str, dict]:
    modality = RecordsModality(settings)
    out = {}
    for item in modality.discover(DATA / folder).items:
        ctx = DeidContext(PSEUDONYMS, PSEUDONYMS.patient(item.patient_id), settings.index_date)
        features = modality.features(deidentify("records", modality.read(item), ctx))
        out[item.patient_id] = {
            "vector": dict(zip(feature_names(settings), features["records"].tolist(), strict=True)),
            **features,
        }
    return out


def test_layout_matches_feature_names():
    names = feature_names(SETTINGS)
    assert names[:5] == ["age:(years-65)/15", "age_missing", "sex_female", "sex_male", "sex_other_or_unknown"]
    assert names[5:7] == ["lab:718-7:ref-z", "lab:718-7:missing"]
    assert names[-1] == f"comorbidity:{SNOMED}|44054006" and len(names) == 5 + 2 * 4 + 2
    features = featurised("r4")["MRN-R4-0001"]
    assert features["records"].dtype == np.float32 and features["records"].shape == (len(names),)


def test_r4_patient_features():
    f = featurised("r4")["MRN-R4-0001"]
    v = f["vector"]
    assert v["age:(years-65)/15"] == pytest.approx((66.8 - 65) / 15, abs=1e-2) and v["age_missing"] == 0
    assert (v["sex_female"], v["sex_male"], v["sex_other_or_unknown"]) == (1, 0, 0)
    # Hb 12.5 on 2024-06-01 is used; Hb 9.0 on 2025-02-01 is after the index date and ignored.
    assert v["lab:718-7:ref-z"] == pytest.approx(z("718-7", 12.5), rel=1e-5) and v["lab:718-7:missing"] == 0
    # CRP 7.2 (effectivePeriod.start) is used; the later preliminary 80.0 is not a final result.
    assert v["lab:1988-5:ref-z"] == pytest.approx(z("1988-5", 7.2), rel=1e-5)
    assert v["lab:2532-0:missing"] == 1 and v["lab:2532-0:ref-z"] == 0
    assert v[f"comorbidity:{SNOMED}|13645005"] == 0  # COPD is refuted
    assert v[f"comorbidity:{SNOMED}|44054006"] == 1  # onset 2016-05
    assert f["label"] == 1  # ICD-10 C34.1 under the C34 category
    assert f["sensitive"] == {"sex": "female", "age_band": "65-79", "ethnicity": "White"}


def test_r5_patients_features():
    f = featurised("r5")
    b, c = f["MRN-R5-0002"], f["MRN-R5-0003"]
    assert b["label"] == 1  # "C349" (no dot) is in C34, recorded 2024-11-20
    assert c["label"] == 0  # the SNOMED lung cancer was entered in error
    # 23:30 on 31 December in UTC+1 is still the 31st where it was measured: before the index date.
    assert b["vector"]["lab:2532-0:ref-z"] == pytest.approx(z("2532-0", 310), rel=1e-5)
    assert c["vector"]["lab:6690-2:missing"] == 1  # dated only "2025": may be after 2025-01-01
    assert b["sensitive"] == {"sex": "male", "age_band": "65-79", "ethnicity": "Black or African American"}
    assert c["sensitive"] == {"sex": "other", "age_band": "80+", "ethnicity": "unknown"}
    assert c["vector"]["sex_other_or_unknown"] == 1


def test_unknown_age_is_flagged():
    e = featurised("bulk")["bulk-pat-e"]
    assert e["vector"]["age:(years-65)/15"] == 0 and e["vector"]["age_missing"] == 1
    assert e["sensitive"]["age_band"] == "unknown" and e["sensitive"]["sex"] == "unknown"


def test_index_date_moves_the_lab_cut_off():
    later = SETTINGS.model_copy(update={"index_date": dt.date(2025, 3, 1)})
    v = featurised("r4", later)["MRN-R4-0001"]["vector"]
    assert v["lab:718-7:ref-z"] == pytest.approx(z("718-7", 9.0), rel=1e-5)


@pytest.mark.parametrize(
    ("code", "hit"),
    [
        ("C34", True),
        ("C34.1", True),
        ("C341", True),
        ("c34.90", True),
        ("C3", False),
        ("C35.0", False),
        ("D34", False),
    ],
)
def test_icd10_targets_match_by_category(code, hit):
    assert CodeToken(ICD10, "C34").matches(Coding(system=ICD10, code=code)) is hit


def test_other_systems_match_exactly():
    token = CodeToken(SNOMED, "363358000")
    assert token.matches(Coding(system=SNOMED, code="363358000"))
    assert not token.matches(Coding(system=SNOMED, code="3633580001"))
    assert not token.matches(Coding(system=ICD10, code="363358000"))


def test_features_refuse_records_that_were_not_deidentified():
    modality = RecordsModality(SETTINGS)
    (item,) = modality.discover(DATA / "r4").items
    with pytest.raises(ItemRejected) as caught:
        modality.features(modality.read(item))
    assert caught.value.rejection.code == "records.not-deidentified"
    assert "Quinta" not in str(caught.value) and "MRN" not in str(caught.value)
