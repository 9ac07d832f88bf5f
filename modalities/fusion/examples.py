"""Random batches in the cohort dataset's layout, for tests, smoke runs and timing benchmarks.

They carry no signal; a test that needs one plants it. Missing modalities follow the contract
(zeros under a 0 mask, genes flagged missing), with at least one modality present per sample.
"""

from __future__ import annotations

import torch

from modalities.fusion.model import StudyLike
from modalities.records import feature_names


def example_batch(study: StudyLike, size: int, *, generator: torch.Generator, present: float = 0.75
                  ) -> dict[str, torch.Tensor]:
    """``size`` samples; each modality present with probability ``present`` (imaging forced if none)."""
    height, width = study.imaging.spatial_size
    features, genes = len(feature_names(study.records)), len(study.genomics.gene_panel)
    masks = (torch.rand(size, 3, generator=generator) < present).float()
    masks[:, 0] = torch.maximum(masks[:, 0], (masks.sum(1) == 0).float())
    imaging, records, genomics = masks.unbind(1)
    missing_genes = ((torch.rand(size, genes, generator=generator) < 0.1) | (genomics[:, None] == 0)).float()
    return {
        "image": torch.rand(size, 1, height, width, generator=generator) * imaging[:, None, None, None],
        "imaging_mask": imaging,
        "records": torch.randn(size, features, generator=generator) * records[:, None],
        "records_mask": records,
        "genome": torch.randn(size, genes, generator=generator) * (1 - missing_genes),
        "genome_missing": missing_genes,
        "genomics_mask": genomics,
        "label": (torch.rand(size, generator=generator) < 0.5).float(),
    }
