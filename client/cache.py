"""The de-identified feature cache in ``STATE/cache``: one file per (patient, modality) entry, all in
that one folder.

Entries are named by a keyed digest of the input bytes and the feature recipe
(:meth:`privacy.pseudonym.Pseudonymiser.cache_key`), so a changed file or a changed study setting
simply misses, and a file name says nothing about the patient. Writes go to a temporary file and are
renamed into place, so a crash never leaves a half-written entry that a later epoch would trust.

Entries used to lie in 256 two-character subfolders. Creating a folder costs as much as creating a file
on the ext4 disks measured here (about 0.17 ms each), and a first ``site prepare`` created one for
nearly every entry, so the folder is flat; ext4 indexes large folders, so lookups stay cheap.
``prune`` deletes entries an earlier version left in subfolders.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

SUFFIX = ".pt"


def _to_torch(value: Any) -> Any:
    """numpy arrays become tensors so entries load with ``weights_only=True`` (no pickle execution)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _to_torch(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_torch(v) for v in value]
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=1, sort_keys=True).encode())


class FeatureCache:
    """Content-addressed store of feature dicts (tensors, numbers, strings)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}{SUFFIX}"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def save(self, key: str, features: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(_to_torch(features), buffer)
        atomic_write_bytes(self.path(key), buffer.getvalue())

    def load(self, key: str) -> dict[str, Any]:
        return torch.load(self.path(key), weights_only=True)

    def keys(self) -> set[str]:
        return {p.stem for p in self.root.glob(f"*{SUFFIX}")}

    def prune(self, keep: Iterable[str]) -> int:
        """Delete entries not in ``keep`` (inputs changed, patients left or were erased), and every entry
        of the earlier subfolder layout, which no key finds any more; returns how many."""
        stale = [self.path(key) for key in self.keys() - set(keep)]
        stale += self.root.glob(f"??/*{SUFFIX}")
        for path in stale:
            path.unlink(missing_ok=True)
            if path.parent != self.root and not any(path.parent.iterdir()):
                path.parent.rmdir()
        return len(stale)
