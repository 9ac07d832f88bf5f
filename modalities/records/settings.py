"""What the study asks of FHIR records."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from modalities.settings import Settings


class RecordsSettings(Settings):
    """Codes are ``system|code`` tokens. A target code from ICD-10 matches its whole category
    (``…icd-10|C34`` matches C34.1), other systems match exactly. Labs are LOINC codes; the latest value
    strictly before ``index_date`` is used; age is computed at ``index_date``.
    """

    target_codes: tuple[str, ...] = Field(min_length=1)
    labs: tuple[str, ...] = ()
    comorbidities: tuple[str, ...] = ()
    index_date: dt.date
