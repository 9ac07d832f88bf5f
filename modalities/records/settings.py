"""What the study asks of FHIR records."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from modalities.settings import Settings


class RecordsSettings(Settings):
    """Codes are ``system|code`` tokens. A target code from ICD-10 matches its whole category
    (``…icd-10|C34`` matches C34.1), other systems match exactly. Labs are LOINC codes listed in
    :data:`modalities.records.lab_units.LAB_REFERENCES`; the latest value strictly before ``index_date``
    is used; conditions (target and comorbidities) count when known on or before ``index_date`` (see
    :mod:`modalities.records.condition_dates`); age is computed at ``index_date``.
    """

    target_codes: tuple[str, ...] = Field(min_length=1)
    labs: tuple[str, ...] = ()
    comorbidities: tuple[str, ...] = ()
    index_date: dt.date
