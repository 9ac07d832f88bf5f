"""The coordinator's checkpoints: after every round, everything needed to carry on after a crash.

``COORDINATOR/checkpoints/round-NNNN.pt`` holds the global weights after that round, the study run's id
(the ledger run id at every site, so a resumed run keeps calibrating the same plan), the digest of the study
it belongs to, the strategy and its settings, and the per-round history (what each site reported, epsilon
included). Files are written whole then renamed into place, so a crash mid-write leaves the previous one
as the latest; a resumed run re-sends the next round from exactly the weights it sent before, and the
sites answer an already trained round from their round store instead of spending budget again.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^round-(\d{4,})\.pt$")


def study_digest(study_json: str) -> str:
    return hashlib.sha256(study_json.encode()).hexdigest()


class CheckpointMismatch(RuntimeError):
    """The checkpoints in the folder belong to another study: resuming would mix two studies."""


@dataclass
class Checkpoint:
    run_id: str
    round: int
    study_digest: str
    strategy: dict[str, Any]
    weights: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "round": self.round, "study_digest": self.study_digest,
                "strategy": self.strategy, "weights": self.weights, "history": self.history}


class CheckpointStore:
    """A folder of round checkpoints; only this coordinator writes it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def save(self, checkpoint: Checkpoint) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"round-{checkpoint.round:04d}.pt"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".round-")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(checkpoint.as_dict(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def latest(self, study_digest: str) -> Checkpoint | None:
        """The newest checkpoint, or None; one of another study is an error, not a silent fresh start."""
        rounds = sorted((int(m.group(1)), p) for p in self.folder.glob("round-*.pt")
                        if (m := _NAME.match(p.name)))
        if not rounds:
            return None
        path = rounds[-1][1]
        data = torch.load(path, weights_only=True)
        if data["study_digest"] != study_digest:
            raise CheckpointMismatch(
                f"{path} belongs to another study; resume with that study, or give this run a new output "
                "folder (checkpoints are never overwritten)")
        return Checkpoint(**data)
