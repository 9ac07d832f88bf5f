"""Every way a genomics input can be set aside or corrected, documented in one place.

Codes are stable (the Site counts them, the audit trail records them, stewards search for them), so
they are never renamed. Two codes reject nothing: ``non-numeric-gene`` and ``non-finite-value``
name cells that were treated as missing; they are counted in ``Discovery.skipped`` and explained in
``Discovery.notes`` while the row itself is kept.
"""

from __future__ import annotations

from modalities.base import ReasonBook

MODALITY = "genomics"

REASONS: dict[str, str] = {
    "genomics.unreadable": "a file or folder cannot be read (permissions, a dangling link, a socket)",
    "genomics.symlink-loop": "a folder reached twice through symbolic links; it is walked once",
    "genomics.not-a-table": "not a CSV, TSV, .txt (optionally .gz) or Parquet table, or it cannot be parsed",
    "genomics.empty-table": "a table with no rows (an empty file, or a header alone)",
    "genomics.no-patient-column": "no column holds the patient identifier named by study.toml "
                                  "[genomics] patient-column",
    "genomics.no-panel-genes": "no column name matches a gene of the study's panel",
    "genomics.no-patient-id": "a row (#row=N) whose patient identifier cell is empty or a missing marker",
    "genomics.empty-row": "a row (#row=N) with no numeric value for any panel gene",
    "genomics.duplicate-sample": "another row (#row=N) for a patient who already has a sample, in the same "
                                 "or an earlier table; the first usable row is kept",
    "genomics.non-numeric-gene": "not a rejection: cells of a panel gene column that are not numbers are "
                                 "treated as missing (a column with no number at all counts as absent)",
    "genomics.non-finite-value": "not a rejection: infinite values, or values beyond float32 range, are "
                                 "treated as missing",
}


rejection = ReasonBook(MODALITY, REASONS)
"""Make a Rejection with a documented ``genomics.<reason>`` code."""
