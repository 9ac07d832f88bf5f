"""FHIR dates as the records modality and consent decisions need them.

FHIR allows partial dates (``"1970"``, ``"1970-05"``) and date-times with a time zone; fhir.resources
keeps partial dates as strings and full ones as ``date``/``datetime``. Questions like "strictly before
the index date" or "does this period cover now" must respect that precision: a lab dated ``"2025"``
may be after 2025-01-01 and so is not used for an index date of 2025-01-01.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")
FhirDate = str | dt.date | dt.datetime


def _as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC; a naive value (no zone given) is read as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def day_range(value: FhirDate | None) -> tuple[dt.date, dt.date] | None:
    """First and last calendar day ``value`` may denote (a date-time's day in its own time zone)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date(), value.date()
    if isinstance(value, dt.date):
        return value, value
    match = _PARTIAL.match(str(value).strip())
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        if month is None:
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        if day is None:
            return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])
        exact = dt.date(year, month, day)
    except ValueError:
        return None
    return exact, exact


def instant_range(value: FhirDate | None) -> tuple[dt.datetime, dt.datetime] | None:
    """``[start, end)`` in aware UTC covering every instant ``value`` may denote."""
    if isinstance(value, dt.datetime):
        return _as_utc(value), _as_utc(value) + dt.timedelta(microseconds=1)
    days = day_range(value)
    if days is None:
        return None
    start = dt.datetime.combine(days[0], dt.time(), dt.UTC)
    end = dt.datetime.combine(days[1] + dt.timedelta(days=1), dt.time(), dt.UTC)
    return start, end


def midpoint(value: FhirDate | None) -> dt.date | None:
    """The middle day of a partial date: a birth year alone counts as born mid-year."""
    days = day_range(value)
    if days is None:
        return None
    return days[0] + (days[1] - days[0]) / 2


def covers(start: FhirDate | None, end: FhirDate | None, at: dt.datetime) -> bool:
    """Whether a Period ``[start, end]`` (either side open when absent) includes the instant ``at``.

    An end is inclusive at its own precision (``end="2025"`` runs to the end of 2025); a bound that is
    present but unreadable covers nothing, so a garbled period never grants anything.
    """
    at = _as_utc(at)
    if start is not None:
        span = instant_range(start)
        if span is None or at < span[0]:
            return False
    if end is not None:
        span = instant_range(end)
        if span is None or at >= span[1]:
            return False
    return True
