"""One patient's genomic sample as the rest of the pipeline sees it: the panel values and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class GenomicsSample:
    """The study panel's values for one patient, in panel order.

    Only the panel travels: the row's other cells (names, birth dates, free text that hospitals keep
    beside the numbers) are dropped at discovery, so they cannot reach a de-identifier, a cache or a
    feature. ``table`` names the source table (its path inside ``genomics/``) so per-table effects can
    be traced; the de-identifier replaces it with a keyed reference because file names may be PHI.
    """

    values: np.ndarray
    """float32 ``(len(panel),)``; NaN where the gene is absent, empty, non-numeric or infinite."""
    table: str
    non_finite: int = 0
    """Cells of this row that were infinite (or beyond float32) and were set to NaN."""

    def copy(self) -> GenomicsSample:
        """A copy whose values can be changed without touching this sample (items are shared)."""
        return GenomicsSample(self.values.astype(np.float32, copy=True), self.table, self.non_finite)
