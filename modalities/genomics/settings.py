"""What the study asks of genomic tables."""

from __future__ import annotations

from pydantic import Field

from modalities.settings import Settings


class GenomicsSettings(Settings):
    """One row per sample; ``patient_column`` links it to a patient; ``gene_panel`` orders the features."""

    patient_column: str = "patient_id"
    gene_panel: tuple[str, ...] = Field(min_length=1)
