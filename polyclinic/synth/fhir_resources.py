"""FHIR resources for one patient, shaped for the site's release (R4 or R5) and coding habits.

Plain JSON dicts, as a hospital's export is; the tests validate every one with fhir.resources so
the readers meet valid resources that still differ where the releases differ (Consent, Encounter).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.labs import SI_UNITS, Measurement, in_si_units, measurements
from polyclinic.synth.population import INDEX_DATE, Patient
from polyclinic.synth.record_quirks import LateDiagnosis, OddUnitResult
from polyclinic.synth.seeding import uuid4

Resource = dict[str, Any]
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
RESEARCH_CONSENT = ("59284-0", "Patient Consent")
TARGET_DISPLAY = "Malignant tumor of lung"
ICD10_LUNG = {
    "C34.0": "Malignant neoplasm of main bronchus",
    "C34.1": "Malignant neoplasm of upper lobe",
    "C34.2": "Malignant neoplasm of middle lobe",
    "C34.3": "Malignant neoplasm of lower lobe",
    "C34.9": "Malignant neoplasm of bronchus or lung, unspecified",
}


@dataclass(frozen=True)
class FhirSite:
    """What shapes a site's resources."""

    release: Literal["R4", "R5"]
    mrn_system: str
    target_coding: Literal["snomed", "icd10", "snomed+icd10"]
    consent_policy: Literal["opt-in", "opt-out"]
    si_units: bool = False  # reports the labs of labs.SI_UNITS in SI units under their own LOINC code


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _concept(*codings: dict[str, str]) -> dict[str, Any]:
    return {"coding": list(codings)}


def _ref(patient: Patient) -> dict[str, str]:
    return {"reference": f"Patient/{patient.record_id}"}


def _day(rng: np.random.Generator, start: dt.date, end: dt.date) -> str:
    return (start + dt.timedelta(days=int(rng.integers(0, (end - start).days)))).isoformat()


def patient_resource(patient: Patient, site: FhirSite) -> Resource:
    ident = patient.identity
    race = vocab.RACES[patient.race]
    return {
        "resourceType": "Patient",
        "id": patient.record_id,
        "extension": [
            {
                "url": vocab.US_CORE_RACE,
                "extension": [
                    {"url": "ombCategory", "valueCoding": _coding(vocab.RACE_SYSTEM, patient.race, race)},
                    {"url": "text", "valueString": race},
                ],
            }
        ],
        "identifier": [
            {
                "use": "usual",
                "type": _concept(_coding(V2_0203, "MR", "Medical record number")),
                "system": site.mrn_system,
                "value": ident.mrn,
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": ident.family, "given": [ident.given]}],
        "telecom": [{"system": "phone", "value": ident.phone, "use": "home"}],
        "gender": "female" if patient.female else "male",
        "birthDate": ident.birth_date.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [ident.address.line],
                "city": ident.address.city,
                "postalCode": ident.address.postal_code,
                "country": "US",
            }
        ],
    }


def _lab_display(code: str) -> str:
    si = [u for u in SI_UNITS.values() if u.code == code]
    return si[0].display if si else vocab.LABS[code][0]


def observation(patient: Patient, m: Measurement, rng: np.random.Generator | None, rid: str = "") -> Resource:
    """A final lab result; ``rid`` when the id was drawn elsewhere (a quirk), else drawn from ``rng``."""
    return {
        "resourceType": "Observation",
        "id": rid or uuid4(rng),
        "status": "final",
        "category": [_concept(_coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory"))],
        "code": _concept(_coding(vocab.LOINC, m.code, _lab_display(m.code))),
        "subject": _ref(patient),
        "effectiveDateTime": m.when.isoformat(),
        "valueQuantity": {"value": m.value, "unit": m.unit, "system": UCUM, "code": m.unit},
    }


def odd_unit_observation(patient: Patient, odd: OddUnitResult) -> Resource:
    """The quirk's result in a unit the study cannot convert."""
    return observation(patient, Measurement(odd.loinc, odd.value, odd.unit, odd.when), None, odd.id)


def _target_code(site: FhirSite, rng: np.random.Generator) -> dict[str, Any]:
    icd = str(rng.choice(list(ICD10_LUNG)))
    codings = {
        "snomed": [_coding(vocab.SNOMED, vocab.TARGET_SNOMED, TARGET_DISPLAY)],
        "icd10": [_coding(vocab.ICD10, icd, ICD10_LUNG[icd])],
    }
    return _concept(*[c for system in site.target_coding.split("+") for c in codings[system]])


def _condition(
    patient: Patient,
    code: dict[str, Any],
    *,
    clinical: str,
    verification: str,
    onset: str,
    rng: np.random.Generator | None,
    rid: str = "",
    recorded: str = "",
) -> Resource:
    return {
        "resourceType": "Condition",
        "id": rid or uuid4(rng),
        "clinicalStatus": _concept(_coding(CONDITION_CLINICAL, clinical)),
        "verificationStatus": _concept(_coding(CONDITION_VERIFICATION, verification)),
        "category": [_concept(_coding(CONDITION_CATEGORY, "problem-list-item", "Problem List Item"))],
        "code": code,
        "subject": _ref(patient),
        "onsetDateTime": onset,
        **({"recordedDate": recorded} if recorded else {}),
    }


def conditions(patient: Patient, site: FhirSite, rng: np.random.Generator) -> list[Resource]:
    """Comorbidities (SNOMED CT, years old), the target for positives (diagnosed in the second half of
    the year before the index date) and, for a few negatives, a target that was ruled out (refuted)."""
    out = [
        _condition(
            patient,
            _concept(_coding(vocab.SNOMED, code, vocab.COMORBIDITIES[code])),
            clinical="active",
            verification="confirmed",
            rng=rng,
            onset=_day(rng, dt.date(2008, 1, 1), dt.date(2023, 1, 1)),
        )
        for code in patient.comorbidities
    ]
    if patient.label or patient.refuted_target:
        out.append(
            _condition(
                patient,
                _target_code(site, rng),
                clinical="active" if patient.label else "inactive",
                verification="confirmed" if patient.label else "refuted",
                onset=_day(rng, dt.date(2024, 6, 1), INDEX_DATE),
                rng=rng,
            )
        )
    return out


def late_condition(patient: Patient, site: FhirSite, late: LateDiagnosis) -> Resource:
    """A confirmed diagnosis recorded after the index date (see :mod:`polyclinic.synth.record_quirks`)."""
    if late.kind == "comorbidity":
        code = _concept(_coding(vocab.SNOMED, late.code, vocab.COMORBIDITIES[late.code]))
    else:
        codings = {
            "snomed": _coding(vocab.SNOMED, vocab.TARGET_SNOMED, TARGET_DISPLAY),
            "icd10": _coding(vocab.ICD10, "C34.9", ICD10_LUNG["C34.9"]),
        }
        code = _concept(*[codings[system] for system in site.target_coding.split("+")])
    return _condition(
        patient,
        code,
        clinical="active",
        verification="confirmed",
        onset=late.onset.isoformat(),
        rng=None,
        rid=late.id,
        recorded=late.recorded.isoformat(),
    )


def consent(patient: Patient, site: FhirSite, rng: np.random.Generator) -> Resource | None:
    """The patient's research consent in the release's shape; ``None`` for patients who have none."""
    if patient.consent == "none":
        return None
    status = "inactive" if patient.consent == "inactive" else "active"
    decision = "deny" if patient.consent == "deny" else "permit"
    category = [_concept(_coding(vocab.LOINC, *RESEARCH_CONSENT))]
    purpose = [_coding(ACT_REASON, "HRESCH", "healthcare research")]
    signed = _day(rng, dt.date(2019, 1, 1), dt.date(2024, 6, 1))
    if site.release == "R5":
        return {
            "resourceType": "Consent",
            "id": uuid4(rng),
            "status": status,
            "category": category,
            "subject": _ref(patient),
            "date": signed,
            "decision": decision,
            "provision": [{"purpose": purpose}],
        }
    rule = "OPTIN" if site.consent_policy == "opt-in" else "OPTOUT"
    return {
        "resourceType": "Consent",
        "id": uuid4(rng),
        "status": status,
        "scope": _concept(_coding(CONSENT_SCOPE, "research", "Research")),
        "category": category,
        "patient": _ref(patient),
        "dateTime": f"{signed}T09:00:00+00:00",
        "policyRule": _concept(_coding(ACT_CODE, rule)),
        "provision": {"type": decision, "purpose": purpose},
    }


def encounter(patient: Patient, site: FhirSite, rng: np.random.Generator) -> Resource:
    """An outpatient visit: a resource type the study does not use, which readers must skip."""
    day = _day(rng, dt.date(2024, 1, 1), dt.date(2024, 12, 1))
    period = {"start": f"{day}T09:00:00+00:00", "end": f"{day}T09:30:00+00:00"}
    ambulatory = _coding(ACT_CODE, "AMB", "ambulatory")
    if site.release == "R5":
        return {
            "resourceType": "Encounter",
            "id": uuid4(rng),
            "status": "completed",
            "class": [_concept(ambulatory)],
            "subject": _ref(patient),
            "actualPeriod": period,
        }
    return {
        "resourceType": "Encounter",
        "id": uuid4(rng),
        "status": "finished",
        "class": ambulatory,
        "subject": _ref(patient),
        "period": period,
    }


def patient_resources(patient: Patient, site: FhirSite, rng: np.random.Generator) -> list[Resource]:
    """Everything the site's record system holds on one patient, Patient first."""
    found = [patient_resource(patient, site)]
    results = measurements(patient, rng)
    found += [observation(patient, in_si_units(m) if site.si_units else m, rng) for m in results]
    found += conditions(patient, site, rng)
    agreement = consent(patient, site, rng)
    return found + ([agreement] if agreement else [])
