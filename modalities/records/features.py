"""De-identified records to model inputs: demographics, latest labs before the index date, conditions.

The layout is fixed by the study settings and named by :func:`feature_names`, so the fusion model,
the model card and the per-feature contributions all agree on what column ``i`` means. Race is kept
out of the model inputs on purpose: it is returned under ``sensitive`` for fairness audits only.
Labs are converted to one unit and scaled by a fixed reference (:mod:`.lab_units`); conditions count
only when known by the index date (:mod:`.condition_dates`). Every column is on a fixed, public scale,
so no statistic of a site's data is needed to standardise it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modalities.base import ItemRejected
from modalities.records.codes import LOINC, CodeToken, concept_codes, concept_matches, parse_tokens
from modalities.records.condition_dates import known_by_index
from modalities.records.dates import day_range, instant_range
from modalities.records.lab_units import LabReference, canonical_value, reference_for, table_digest
from modalities.records.reasons import reject
from modalities.records.record import PatientRecord
from modalities.records.settings import RecordsSettings

US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
LAB_STATUSES = frozenset({"final", "amended", "corrected"})
"""Preliminary or cancelled results are not facts yet; amended and corrected ones replace finals."""
NOT_A_DIAGNOSIS = frozenset({"refuted", "entered-in-error"})
SEXES = ("female", "male")
_IDENTIFYING = ("identifier", "name", "telecom", "address", "birthDate", "contact", "photo")
RECIPE_VERSION = "3"
AGE_CENTRE, AGE_SPREAD = 65.0, 15.0
"""Age enters as (years - 65) / 15: centred and of unit scale for an adult clinical population, fixed so
that no statistic of the site's patients is needed (the same reason labs use reference intervals)."""
"""Bump whenever the recipe's code changes what a record turns into (2: lab units and reference
scaling, condition dates); see :func:`recipe_version`."""


def recipe_version() -> str:
    """What cached record features depend on besides the input bytes and the study settings: this
    module's :data:`RECIPE_VERSION` and a digest of the lab unit table."""
    return f"records-{RECIPE_VERSION}-{table_digest()}"


def lab_tokens(loinc: str) -> tuple[CodeToken, ...]:
    """The LOINC codes that count as the study lab ``loinc`` (its own and its listed siblings)."""
    return tuple(CodeToken(LOINC, code) for code in (loinc, *reference_for(loinc).also_coded))


def feature_names(settings: RecordsSettings) -> list[str]:
    """Column names of the ``records`` vector, in order.

    Age is (years - 65) / 15 (0 with ``age_missing`` = 1 when unknown); sex is one-hot; each lab is its latest
    value in the lab's canonical unit scaled by the lab's reference interval, ``(ln value - ln centre)
    / spread`` (:mod:`modalities.records.lab_units`; 0 when missing) with a ``missing`` flag; each
    comorbidity is a flag, 1 when a Condition known by the index date has the code.
    """
    names = ["age:(years-65)/15", "age_missing", "sex_female", "sex_male", "sex_other_or_unknown"]
    for lab in settings.labs:
        names += [f"lab:{lab}:ref-z", f"lab:{lab}:missing"]
    names += [f"comorbidity:{token}" for token in settings.comorbidities]
    return names


def age_band(age: float | None) -> str:
    if age is None:
        return "unknown"
    return "<50" if age < 50 else "50-64" if age < 65 else "65-79" if age < 80 else "80+"


def race_display(patient: Any) -> str:
    """The US Core race extension's OMB category display (or its text), else ``"unknown"``."""
    for extension in patient.extension or []:
        if extension.url != US_CORE_RACE:
            continue
        parts = extension.extension or []
        for part in parts:
            if part.url == "ombCategory" and part.valueCoding is not None and part.valueCoding.display:
                return part.valueCoding.display
        for part in parts:
            if part.url == "text" and part.valueString:
                return part.valueString
    return "unknown"


class RecordFeatures:
    """The feature recipe of one study; code tokens and lab references are looked up once, so a bad
    token or a lab without a unit table entry fails at start-up."""

    def __init__(self, settings: RecordsSettings) -> None:
        self.settings = settings
        self.targets = parse_tokens(settings.target_codes, "target-codes")
        self.comorbidities = parse_tokens(settings.comorbidities, "comorbidities")
        self.labs = {lab: (reference_for(lab), lab_tokens(lab)) for lab in settings.labs}

    def __call__(self, record: PatientRecord) -> dict[str, Any]:
        patient = record.patient
        leftover = [name for name in _IDENTIFYING if getattr(patient, name, None)]
        if leftover:
            raise ItemRejected(
                reject(
                    "not-deidentified",
                    "records",
                    "features were asked of a record that still carries "
                    f"identifying elements ({', '.join(leftover)})",
                    "de-identify the record first "
                    "(privacy.deidentify.deidentify('records', ...)); this is a bug in the caller",
                )
            )
        age = record.age_at_index
        gender = patient.gender or "unknown"
        values = [(age - AGE_CENTRE) / AGE_SPREAD if age is not None else 0.0, float(age is None)]
        values += [float(gender == sex) for sex in SEXES] + [float(gender not in SEXES)]
        for ref, tokens in self.labs.values():
            latest = self._latest_lab(record, ref, tokens)
            values += [0.0, 1.0] if latest is None else [ref.scale(latest), 0.0]
        values += [float(self._has_condition(record, (token,))) for token in self.comorbidities]
        return {
            "records": np.asarray(values, dtype=np.float32),
            "label": int(self._has_condition(record, self.targets)),
            "sensitive": {"sex": gender, "age_band": age_band(age), "ethnicity": race_display(patient)},
        }

    def _latest_lab(
        self, record: PatientRecord, ref: LabReference, tokens: tuple[CodeToken, ...]
    ) -> float | None:
        """The value, in the lab's canonical unit, of the last final result strictly before the index
        date, whatever its precision.

        A partial date counts by its last possible day (``"2024"`` is before 2025-01-01, ``"2025"`` is
        not), so no result from on or after the index date can leak into the features. A result in an
        unlisted unit never gets here (discovery rejects it as ``records.unknown-unit``) and would be
        passed over if it did: it is never mixed in unconverted.
        """
        best: tuple[Any, float] | None = None
        for obs in record.observations:
            if obs.status not in LAB_STATUSES or not concept_matches(obs.code, tokens):
                continue
            when = (
                obs.effectiveDateTime
                or obs.effectiveInstant
                or (obs.effectivePeriod.start if obs.effectivePeriod is not None else None)
            )
            days, span = day_range(when), instant_range(when)
            if days is None or span is None or days[1] >= self.settings.index_date:
                continue
            value = canonical_value(obs.valueQuantity, ref)
            if value is not None and (best is None or span[1] > best[0]):
                best = (span[1], value)
        return None if best is None else best[1]

    def _has_condition(self, record: PatientRecord, tokens: tuple[CodeToken, ...]) -> bool:
        """A Condition with the code, not refuted or entered in error, known by the index date."""
        return any(
            concept_matches(c.code, tokens)
            and not concept_codes(c.verificationStatus) & NOT_A_DIAGNOSIS
            and known_by_index(c, self.settings.index_date, record.age_at_index) is True
            for c in record.conditions
        )
