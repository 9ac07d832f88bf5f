"""What the study asks of genomic tables."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from modalities.settings import Settings


class GenomicsSettings(Settings):
    """One row per sample; ``patient_column`` links it to a patient; ``gene_panel`` orders the features.

    ``reference`` is a public expression profile of the panel (gene -> typical log-expression, e.g. an
    atlas median), stated once for the whole study. The genomics encoder reads each sample relative to
    it after normalising the sample on its own genes, so genes with high and low baseline expression
    start level without any statistic of a site's patients (which DP-SGD would not cover). Without it,
    samples are only normalised on their own genes and each gene keeps its baseline as a constant
    offset, which small DP-trained models learn around slowly.
    """

    patient_column: str = "patient_id"
    gene_panel: tuple[str, ...] = Field(min_length=1)
    reference: dict[str, float] | None = None

    @model_validator(mode="after")
    def _reference_covers_panel(self) -> GenomicsSettings:
        if self.reference is None:
            return self
        missing = [g for g in self.gene_panel if g not in self.reference]
        extra = sorted(set(self.reference) - set(self.gene_panel))
        bad = [g for g, v in self.reference.items() if not math.isfinite(v)]
        if missing or extra or bad:
            raise ValueError(
                "genomics reference must give one finite log-expression per panel gene: "
                + "; ".join(part for part in (
                    f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else "",
                    f"not in the panel {extra[:5]}" if extra else "",
                    f"not finite {bad[:5]}" if bad else "") if part)
                + "; list every gene of gene-panel under [genomics.reference], or leave the table out")
        return self

    def reference_profile(self) -> tuple[float, ...] | None:
        """The reference in panel order, or None when the study states none."""
        return None if self.reference is None else tuple(self.reference[g] for g in self.gene_panel)
