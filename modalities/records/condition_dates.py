"""Whether a Condition was known on or before the study's index date.

A diagnosis first made after the index date is the future as far as the study is concerned: counted
as a comorbidity or a label it leaks what the model must not know. A Condition carries up to three
kinds of date, each a choice of types (``onset[x]``, ``abatement[x]``: dateTime, Period, Age, Range or
free text; ``recordedDate``), read as a clinician reading the chart on the index date would:

* ``recordedDate`` is when the diagnosis entered the chart and ``onset[x]`` when the condition began;
  the condition counts when every one of them that is present lies on or before the index date. So a
  diagnosis recorded after the index date does not count even when its onset is back-dated, and one
  recorded before with an onset after it (a planned or mis-dated entry) does not count either.
* With neither, an ``abatement[x]`` on or before the index date shows the condition existed (and
  ended) before it, and it counts: a history of the condition is a comorbidity. A later abatement says
  nothing about when the condition began.
* With no usable date at all (no such element, only free text, or an age when the age at the index
  date is unknown) the condition does **not** count: nothing shows it was known at the index date,
  and counting it would let a diagnosis exported after the index date leak into the features. The
  records discovery says how many study-coded Conditions had no date, so the steward can see it.

Dates count by their last possible day (``"2024"`` is on or before 2025-01-01, ``"2025"`` is not),
as the lab cut-off does. A Period counts by its start (when the condition began), else its end; an
Age (UCUM ``a``, ``mo``, ``wk``, ``d``, ``h``, ``min``) by comparison with the age at the index date,
and a Range of ages by its upper bound, the latest the onset can have been.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from modalities.records.dates import FhirDate, day_range

UCUM = "http://unitsofmeasure.org"
DAYS_PER_YEAR = 365.2425
AGE_UNITS = {
    "a": 1.0,
    "mo": 1 / 12,
    "wk": 7 / DAYS_PER_YEAR,
    "d": 1 / DAYS_PER_YEAR,
    "h": 1 / (24 * DAYS_PER_YEAR),
    "min": 1 / (24 * 60 * DAYS_PER_YEAR),
}
"""UCUM time units an Age may use, in years."""
DATE_ELEMENTS = (
    "recordedDate",
    *(f"{prefix}{kind}" for prefix in ("onset", "abatement") for kind in ("DateTime", "Period", "Age")),
    "onsetRange",
    "abatementRange",
)


def _date_by(value: FhirDate | None, index_date: dt.date) -> bool | None:
    days = day_range(value)
    return None if days is None else days[1] <= index_date


def _age_by(age: Any, age_at_index: float | None) -> bool | None:
    if age is None or age.value is None or age_at_index is None:
        return None
    if age.system not in (None, UCUM) or age.code not in AGE_UNITS:
        return None
    return float(age.value) * AGE_UNITS[age.code] <= age_at_index


def _choice_by(condition: Any, prefix: str, index_date: dt.date, age_at_index: float | None) -> bool | None:
    """What ``onset[x]`` or ``abatement[x]`` says (only one type is present in valid FHIR)."""
    period = getattr(condition, f"{prefix}Period", None)
    ages = getattr(condition, f"{prefix}Range", None)
    for verdict in (
        _date_by(getattr(condition, f"{prefix}DateTime", None), index_date),
        _date_by((period.start or period.end) if period is not None else None, index_date),
        _age_by(getattr(condition, f"{prefix}Age", None), age_at_index),
        _age_by(ages.high if ages is not None else None, age_at_index),
    ):
        if verdict is not None:
            return verdict
    return None


def known_by_index(condition: Any, index_date: dt.date, age_at_index: float | None) -> bool | None:
    """True: known on or before the index date; False: dated, but not by then; None: no usable date."""
    evidence = [
        verdict
        for verdict in (
            _date_by(condition.recordedDate, index_date),
            _choice_by(condition, "onset", index_date, age_at_index),
        )
        if verdict is not None
    ]
    if evidence:
        return all(evidence)
    return True if _choice_by(condition, "abatement", index_date, age_at_index) else None


def is_dated(condition: Any) -> bool:
    """Whether the Condition has any date element at all (free-text onsets and abatements are not)."""
    return any(getattr(condition, name, None) is not None for name in DATE_ELEMENTS)
