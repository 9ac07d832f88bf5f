"""Genomic tables as a modality: one row per sample, aligned to the study's gene panel.

Discovery parses every table (a table holds many patients, so there is nothing to defer), keeps one
sample per patient and drops every cell outside the panel; ``read`` hands out a private copy of that
sample; ``features`` gives the model the panel with missing values zeroed and a mask saying which
were missing, so "not measured" is never confused with "expression 0". Gene values are normalised per
sample inside the genomics encoder, against the study's reference profile: no statistic of other patients.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modalities.base import Discovery, FileMapper, Item, register_modality
from modalities.files import walk_files
from modalities.genomics.discovery import TableScanner
from modalities.genomics.reasons import MODALITY
from modalities.genomics.sample import GenomicsSample
from modalities.genomics.settings import GenomicsSettings

logger = logging.getLogger(__name__)


@register_modality
class GenomicsModality:
    """CSV, TSV, .txt, gzip-compressed text and Parquet tables under ``SITE/genomics/``."""

    name: ClassVar[str] = MODALITY
    folder: ClassVar[str] = "genomics"

    def __init__(self, settings: GenomicsSettings) -> None:
        self.settings = settings

    def discover(self, root: Path, map_files: FileMapper = map) -> Discovery:  # one process: few files
        """Every data row becomes an item or a ``#row=N`` rejection; bad files are rejected whole."""
        discovery = Discovery(MODALITY)
        walk = walk_files(root, modality=MODALITY, site_root=root.parent)
        discovery.rejections.extend(walk.rejections)
        discovery.found += len(walk.rejections)
        scanner = TableScanner(self.settings, root=root, discovery=discovery)
        for path in walk.files:
            scanner.scan(path)
        discovery.skipped.update(scanner.skipped)
        logger.info("genomics: %d file(s), %d input(s), %d sample(s), %d rejection(s)", len(walk.files),
                    discovery.found, len(discovery.items), len(discovery.rejections))
        return discovery

    def read(self, item: Item) -> GenomicsSample:
        """The item's sample, copied so later steps cannot alter what discovery found."""
        sample = item.payload
        if not isinstance(sample, GenomicsSample):
            raise TypeError(f"item {item.where!r} was not discovered by the genomics modality")
        self._check_panel(sample)
        return sample.copy()

    def features(self, content: GenomicsSample) -> dict[str, Any]:
        """``genome``: panel values, 0.0 where missing; ``genome_missing``: 1.0 where missing."""
        self._check_panel(content)
        missing = np.isnan(content.values)
        return {
            "genome": np.where(missing, 0.0, content.values).astype(np.float32),
            "genome_missing": missing.astype(np.float32),
        }

    def _check_panel(self, sample: GenomicsSample) -> None:
        expected = (len(self.settings.gene_panel),)
        if sample.values.shape != expected:
            raise ValueError(f"a genomics sample has shape {sample.values.shape}, the study's panel needs "
                             f"{expected}; rebuild the cache after changing gene-panel")
