"""De-identification of genomic samples: only the panel values may reach the cache.

Discovery already dropped every cell outside the panel, so what is left to protect is the table's
file name (stewards name files after patients or studies): it becomes a keyed reference that still
tells samples from the same table apart (useful for batch effects) but reveals nothing. The result
is built field by field from the panel values, never copied wholesale, so a field added to the
sample later cannot slip through unreviewed.
"""

from __future__ import annotations

import numpy as np

from modalities.genomics.sample import GenomicsSample
from privacy.deidentify import DeidContext, register_deidentifier


@register_deidentifier("genomics")
def deidentify_sample(sample: GenomicsSample, ctx: DeidContext) -> GenomicsSample:
    """A new sample holding the panel values (float32 copy), a keyed table reference and a count."""
    if not isinstance(sample, GenomicsSample):
        raise TypeError(f"the genomics de-identifier takes a GenomicsSample, not {type(sample).__name__}")
    values = np.array(sample.values, dtype=np.float32, copy=True)
    return GenomicsSample(values, ctx.pseudonymiser.reference(sample.table), int(sample.non_finite))
