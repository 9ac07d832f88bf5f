"""Genomic tables (CSV, TSV, Parquet): importing this package registers the ``genomics`` modality."""

from modalities.genomics.modality import GenomicsModality
from modalities.genomics.reasons import REASONS
from modalities.genomics.sample import GenomicsSample
from modalities.genomics.settings import GenomicsSettings

__all__ = ["REASONS", "GenomicsModality", "GenomicsSample", "GenomicsSettings"]
