"""A prepared cohort as a torch Dataset: one dict of tensors per patient, every modality present or masked.

Features come from the de-identified cache only; nothing here touches the hospital's raw files. Each
sample is built by :func:`client.model_inputs.assemble_sample` from that patient's own features alone
(no statistics over the site's patients), the same path ``polyclinic predict`` takes, so the privacy
guarantee of DP-SGD covers everything the released model learned from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from client.cache import FeatureCache
from client.cohort import CohortManifest
from client.model_inputs import assemble_sample


class CohortDataset(Dataset):
    """Patients of one site's prepared cohort, optionally one split of it."""

    def __init__(self, state: Path, study: Any, split: str | None = None) -> None:
        manifest = CohortManifest.load(state)
        cache = FeatureCache(state / "cache")
        self.site_id = manifest.site_id
        self.patients = [p for p in manifest.patients if split is None or p.split == split]
        self.samples = [
            {**assemble_sample(study, {m: cache.load(key) for m, key in p.entries.items()}),
             "label": torch.tensor(float(p.label))}
            for p in self.patients
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def as_batch(self) -> dict[str, torch.Tensor]:
        """Every sample stacked into one batch, for evaluation (a site's split fits in memory)."""
        if not self.samples:
            raise ValueError("an empty split has no batch; check len() first")
        return {key: torch.stack([sample[key] for sample in self.samples]) for key in self.samples[0]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.samples[index]
