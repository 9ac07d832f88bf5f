"""A prepared cohort as a torch Dataset: one dict of tensors per patient, every modality present or masked.

Features come from the de-identified cache only; nothing here touches the hospital's raw files.
Records and gene values are standardised with statistics of the site's own training split (gene
values over observed entries only), which also removes most of a site's batch effect before any
weight leaves the site; validation patients never influence those statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from client.cache import FeatureCache
from client.cohort import TRAIN, CohortManifest
from modalities.records import feature_names

EPS = 1e-6


@dataclass(frozen=True)
class Standardiser:
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, values: torch.Tensor, observed: torch.Tensor | None = None) -> Standardiser:
        """Per-column mean and std over the rows where ``observed`` (default: all rows)."""
        weight = torch.ones_like(values) if observed is None else observed
        count = weight.sum(0).clamp_min(1)
        mean = (values * weight).sum(0) / count
        var = ((values - mean) ** 2 * weight).sum(0) / count
        return cls(mean, var.sqrt().clamp_min(EPS))

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std


class CohortDataset(Dataset):
    """Patients of one site's prepared cohort, optionally one split of it."""

    def __init__(self, state: Path, study: Any, split: str | None = None) -> None:
        manifest = CohortManifest.load(state)
        cache = FeatureCache(state / "cache")
        height, width = study.imaging.spatial_size
        self.shapes = {"image": (1, height, width), "records": (len(feature_names(study.records)),),
                       "genome": (len(study.genomics.gene_panel),)}
        self.site_id = manifest.site_id
        everyone = [self._assemble(p.entries, p.label, cache) for p in manifest.patients]
        train = [s for s, p in zip(everyone, manifest.patients, strict=True) if p.split == TRAIN]
        self.patients = [p for p in manifest.patients if split is None or p.split == split]
        self.samples = [s for s, p in zip(everyone, manifest.patients, strict=True)
                        if split is None or p.split == split]
        self._standardise(train)

    def _assemble(self, entries: dict[str, str], label: int, cache: FeatureCache) -> dict[str, torch.Tensor]:
        records = cache.load(entries["records"]) if "records" in entries else None
        imaging = cache.load(entries["imaging"]) if "imaging" in entries else None
        genomics = cache.load(entries["genomics"]) if "genomics" in entries else None
        zeros = {k: torch.zeros(shape) for k, shape in self.shapes.items()}
        all_missing = torch.ones(self.shapes["genome"])
        return {
            "image": imaging["image"].float() if imaging else zeros["image"],
            "imaging_mask": torch.tensor(float(imaging is not None)),
            "records": records["records"].float() if records else zeros["records"],
            "records_mask": torch.tensor(float(records is not None)),
            "genome": genomics["genome"].float() if genomics else zeros["genome"],
            "genome_missing": genomics["genome_missing"].float() if genomics else all_missing,
            "genomics_mask": torch.tensor(float(genomics is not None)),
            "label": torch.tensor(float(label)),
        }

    def _standardise(self, train: list[dict[str, torch.Tensor]]) -> None:
        with_records = [s for s in train if s["records_mask"] > 0]
        with_genome = [s for s in train if s["genomics_mask"] > 0]
        if with_records:
            records = Standardiser.fit(torch.stack([s["records"] for s in with_records]))
            for sample in self.samples:
                sample["records"] = records(sample["records"]) * sample["records_mask"]
        if with_genome:
            observed = 1 - torch.stack([s["genome_missing"] for s in with_genome])
            genome = Standardiser.fit(torch.stack([s["genome"] for s in with_genome]), observed)
            for sample in self.samples:
                sample["genome"] = genome(sample["genome"]) * (1 - sample["genome_missing"]) \
                    * sample["genomics_mask"]

    def __len__(self) -> int:
        return len(self.samples)

    def as_batch(self) -> dict[str, torch.Tensor]:
        """Every sample stacked into one batch, for evaluation (a site's split fits in memory)."""
        if not self.samples:
            raise ValueError("an empty split has no batch; check len() first")
        return {key: torch.stack([sample[key] for sample in self.samples]) for key in self.samples[0]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.samples[index]
