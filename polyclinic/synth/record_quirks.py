"""Record-keeping quirks a reader must handle: diagnoses made after the index date, a lab result in a
unit no reader should guess.

Drawn from their own stream (``records-quirks``, see :mod:`polyclinic.synth.seeding`), never from the
records stream, so adding them left every earlier draw (values, ids, file names) as it was.

* Late diagnoses: some patients get a comorbidity they do not have by the index date, diagnosed
  after it; some negatives get the target diagnosed after it. Half are recorded after the index date
  with an onset after it too, half back-dated (onset before the index date, recorded after it): a
  diagnosis that was not in the chart on the index date counts for neither features nor label.
* One result per site in a unit the study's unit table does not list (CRP in nmol/L): it must be
  rejected as ``records.unknown-unit``, never mixed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.population import INDEX_DATE, Patient
from polyclinic.synth.seeding import uuid4

LATE_COMORBIDITY_RATE = 0.2
LATE_TARGET_RATE = 0.06  # of negatives
BACKDATED_SHARE = 0.5
UNKNOWN_UNIT = ("1988-5", "nmol/L")  # CRP is a pentamer: no reader should invent a molar mass for it


@dataclass(frozen=True)
class LateDiagnosis:
    """A Condition recorded after the index date (the onset may be before it: back-dated)."""

    kind: Literal["comorbidity", "target"]
    code: str  # vocabulary.COMORBIDITIES code, or vocabulary.TARGET_SNOMED for the target
    onset: dt.date
    recorded: dt.date
    id: str


@dataclass(frozen=True)
class OddUnitResult:
    """A lab result dated before the index date in a unit the study cannot convert."""

    record_id: str
    loinc: str
    unit: str
    value: float
    when: dt.datetime
    id: str


@dataclass(frozen=True)
class RecordQuirks:
    late: dict[str, list[LateDiagnosis]] = field(default_factory=dict)  # Patient.id -> diagnoses
    odd_unit: OddUnitResult | None = None


def _late(kind: Literal["comorbidity", "target"], code: str, rng: np.random.Generator) -> LateDiagnosis:
    recorded = INDEX_DATE + dt.timedelta(days=int(rng.integers(1, 300)))
    if rng.random() < BACKDATED_SHARE:
        onset = INDEX_DATE - dt.timedelta(days=int(rng.integers(0, 365)))
    else:
        onset = INDEX_DATE + dt.timedelta(days=int(rng.integers(1, (recorded - INDEX_DATE).days + 1)))
    return LateDiagnosis(kind, code, onset, recorded, uuid4(rng))


def plan_quirks(patients: list[Patient], rng: np.random.Generator) -> RecordQuirks:
    """Which patients get late diagnoses, and who carries the result in an unknown unit."""
    late: dict[str, list[LateDiagnosis]] = {}
    for patient in patients:
        found = []
        absent = [code for code in vocab.COMORBIDITIES if code not in patient.comorbidities]
        if rng.random() < LATE_COMORBIDITY_RATE and absent:
            found.append(_late("comorbidity", str(rng.choice(absent)), rng))
        if rng.random() < LATE_TARGET_RATE and not patient.label and not patient.refuted_target:
            found.append(_late("target", vocab.TARGET_SNOMED, rng))
        if found:
            late[patient.record_id] = found
    carrier = patients[int(rng.integers(len(patients)))]
    day = INDEX_DATE - dt.timedelta(days=int(rng.integers(1, 30)))
    odd = OddUnitResult(
        carrier.record_id,
        UNKNOWN_UNIT[0],
        UNKNOWN_UNIT[1],
        round(float(rng.uniform(5.0, 500.0)), 1),
        dt.datetime(day.year, day.month, day.day, 10, 0, tzinfo=dt.UTC),
        uuid4(rng),
    )
    return RecordQuirks(late, odd)
