"""The cohort: patients joined by pseudonym across modalities, their split, and the manifest in STATE.

A missing modality is a mask, not a dropped patient, so the manifest lists per patient only the cache
entries that exist. The split is patient-level and stratified by label, and depends only on the
pseudonym and the seed: adding patients later never moves an existing patient between train and
validation, which would leak validation patients into training.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from client.cache import atomic_write_json

MANIFEST = "cohort.json"
TRAIN, VALIDATION = "train", "validation"


def assign_split(labels: dict[str, int], validation_fraction: float, seed: int) -> dict[str, str]:
    """Per label, patients ordered by a seeded hash of their pseudonym; the first fraction validates."""
    by_label: dict[int, list[str]] = defaultdict(list)
    for pseudonym, label in labels.items():
        by_label[label].append(pseudonym)
    split: dict[str, str] = {}
    for members in by_label.values():
        members.sort(key=lambda p: hashlib.sha256(f"{seed}\0{p}".encode()).digest())
        n_validation = round(validation_fraction * len(members))
        for rank, pseudonym in enumerate(members):
            split[pseudonym] = VALIDATION if rank < n_validation else TRAIN
    return split


@dataclass(frozen=True)
class PatientEntry:
    pseudonym: str
    split: str
    label: int
    sensitive: dict[str, str]
    entries: dict[str, str]
    """modality -> cache key of its features."""


@dataclass(frozen=True)
class CohortManifest:
    site_id: str
    study: str
    patients: list[PatientEntry]

    def keys(self) -> set[str]:
        return {key for patient in self.patients for key in patient.entries.values()}

    def save(self, state: Path) -> None:
        atomic_write_json(state / "cache" / MANIFEST, asdict(self))

    @classmethod
    def load(cls, state: Path) -> CohortManifest:
        path = state / "cache" / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no prepared cohort; run `polyclinic site prepare SITE` first") \
                from None
        return cls(data["site_id"], data["study"], [PatientEntry(**p) for p in data["patients"]])
