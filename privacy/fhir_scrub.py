"""De-identifying a patient's FHIR record: keep only what features and consent need (an allow-list).

A deny-list would have to foresee every place a name or number can hide (``contained`` resources,
``display`` strings on references, extensions, ``note``, narrative ``text``, performers, scanned
consent forms); an allow-list keeps coded clinical content, the dates features depend on, and nothing
else. The patient keeps gender and the US Core race extension (a fairness attribute); the birth date
becomes an age at the study's index date; every resource id is replaced by a keyed pseudonym-derived
id and every patient reference by ``Patient/<pseudonym>``; a consent provision's actors and data keep
only their role and target type, so a provision narrowed to someone still reads as narrowed. The
result is re-validated with the same release's fhir.resources model, so it is still well-formed FHIR.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from modalities.records.dates import midpoint
from modalities.records.features import US_CORE_RACE
from modalities.records.record import PatientRecord
from modalities.records.releases import release_of
from privacy.deidentify import DeidContext, register_deidentifier

KEEP = "keep"  # a primitive value, kept as is
SUBJECT = "subject"  # a reference to the patient, replaced by the pseudonym
TARGET = "target"  # a reference to anyone or anything else: only the target's resource type is kept
_TYPED_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[^/]+(?:/_history/[^/]+)?$")

CODING = {"system": KEEP, "version": KEEP, "code": KEEP, "display": KEEP}
CONCEPT = {"coding": CODING}  # CodeableConcept.text is free text and may name people: dropped
PERIOD = {"start": KEEP, "end": KEEP}
QUANTITY = {"value": KEEP, "comparator": KEEP, "unit": KEEP, "system": KEEP, "code": KEEP}
RANGE = {"low": QUANTITY, "high": QUANTITY}

OBSERVATION = {
    "status": KEEP,
    "category": CONCEPT,
    "code": CONCEPT,
    "subject": SUBJECT,
    "effectiveDateTime": KEEP,
    "effectivePeriod": PERIOD,
    "effectiveInstant": KEEP,
    "valueQuantity": QUANTITY,
    "valueCodeableConcept": CONCEPT,
    "valueBoolean": KEEP,
    "valueInteger": KEEP,
    "dataAbsentReason": CONCEPT,
    "interpretation": CONCEPT,
    "component": {
        "code": CONCEPT,
        "valueQuantity": QUANTITY,
        "valueCodeableConcept": CONCEPT,
        "dataAbsentReason": CONCEPT,
    },
}
CONDITION = {
    "clinicalStatus": CONCEPT,
    "verificationStatus": CONCEPT,
    "category": CONCEPT,
    "severity": CONCEPT,
    "code": CONCEPT,
    "bodySite": CONCEPT,
    "subject": SUBJECT,
    "onsetDateTime": KEEP,
    "onsetPeriod": PERIOD,
    "onsetAge": QUANTITY,
    "onsetRange": RANGE,
    "abatementDateTime": KEEP,
    "abatementPeriod": PERIOD,
    "abatementAge": QUANTITY,
    "abatementRange": RANGE,
    "recordedDate": KEEP,
}
_PROVISION = {  # actor and data keep their shape, so a narrowed provision still reads as narrowed
    "actor": {"role": CONCEPT, "reference": TARGET},
    "data": {"meaning": KEEP, "reference": TARGET},
    "period": PERIOD,
    "action": CONCEPT,
    "securityLabel": CODING,
    "purpose": CODING,
    "code": CONCEPT,
    "dataPeriod": PERIOD,
}
PROVISION_R4 = {**_PROVISION, "type": KEEP, "class": CODING}
PROVISION_R4["provision"] = PROVISION_R4
PROVISION_R5 = {**_PROVISION, "documentType": CODING, "resourceType": CODING}
PROVISION_R5["provision"] = PROVISION_R5
CONSENT = {
    "R4B": {
        "status": KEEP,
        "scope": CONCEPT,
        "category": CONCEPT,
        "patient": SUBJECT,
        "dateTime": KEEP,
        "policy": {"authority": KEEP, "uri": KEEP},
        "policyRule": CONCEPT,
        "provision": PROVISION_R4,
    },
    "R5": {
        "status": KEEP,
        "category": CONCEPT,
        "subject": SUBJECT,
        "date": KEEP,
        "period": PERIOD,
        "decision": KEEP,
        "regulatoryBasis": CONCEPT,
        "policyBasis": {"uri": KEEP},
        "provision": PROVISION_R5,
    },
}
PATIENT = {
    "gender": KEEP,
    "extension": {"url": KEEP, "extension": {"url": KEEP, "valueCoding": CODING, "valueString": KEEP}},
}
RACE_PARTS = {"ombCategory", "detailed", "text"}


def _keep(value: Any, spec: Any, ctx: DeidContext) -> Any:
    """``value`` reduced to what ``spec`` allows; lists are filtered element-wise."""
    if isinstance(value, list):
        kept = [_keep(v, spec, ctx) for v in value]
        return [v for v in kept if v not in (None, {}, [])] or None
    if spec == SUBJECT:
        return {"reference": f"Patient/{ctx.pseudonym}"}
    if spec == TARGET:
        target = value.get("reference") if isinstance(value, dict) else None
        match = _TYPED_REFERENCE.search(target) if isinstance(target, str) else None
        return {"type": match.group(1) if match else "Resource"}
    if spec == KEEP:
        return value if isinstance(value, (str, int, float, bool)) else None
    if not isinstance(value, dict):
        return None
    kept = {key: _keep(value[key], sub, ctx) for key, sub in spec.items() if key in value}
    return {k: v for k, v in kept.items() if v not in (None, {}, [])}


def _resource(model: Any, spec: dict[str, Any], index: int, ctx: DeidContext) -> Any:
    """A resource reduced to ``spec``, with an id derived from the pseudonym and its original id."""
    data = model.model_dump(mode="json")
    kind = data["resourceType"]
    original = f"{kind}/{data.get('id') or index}"
    clean = {
        **_keep(data, spec, ctx),
        "resourceType": kind,
        "id": f"{ctx.pseudonym}-{ctx.pseudonymiser.reference(original)}",
    }
    return type(model).model_validate(clean)


def _patient(model: Any, ctx: DeidContext) -> Any:
    """Gender and the US Core race extension (OMB category, detailed codes, text); nothing else."""
    clean = _keep(model.model_dump(mode="json"), PATIENT, ctx)
    races = [
        {"url": US_CORE_RACE, "extension": parts}
        for race in clean.pop("extension", [])
        if race.get("url") == US_CORE_RACE
        if (parts := [p for p in race.get("extension", []) if p.get("url") in RACE_PARTS])
    ]
    if races:
        clean["extension"] = races
    return type(model).model_validate({**clean, "resourceType": "Patient", "id": ctx.pseudonym})


def age_at(birth_date: Any, index_date: dt.date) -> float | None:
    """Age in years at the index date; a partial birth date counts from its midpoint; None if unknown."""
    born = midpoint(birth_date)
    if born is None or born > index_date:
        return None
    return (index_date - born).days / 365.2425


@register_deidentifier("records")
def scrub_record(record: PatientRecord, ctx: DeidContext) -> PatientRecord:
    """A new record with nothing identifying: see the module docstring for what is kept."""
    return PatientRecord(
        patient=_patient(record.patient, ctx),
        observations=[_resource(m, OBSERVATION, i, ctx) for i, m in enumerate(record.observations)],
        conditions=[_resource(m, CONDITION, i, ctx) for i, m in enumerate(record.conditions)],
        consents=[_resource(m, CONSENT[release_of(m)], i, ctx) for i, m in enumerate(record.consents)],
        fhir_version=record.fhir_version,
        age_at_index=age_at(record.patient.birthDate, ctx.index_date),
    )
