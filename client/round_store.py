"""The updates a site has already released, kept so that a repeated request never spends budget twice.

A coordinator that dies after a site trained round r, but before it saved round r, resumes from round
r-1 and asks for round r again with the very same global weights. Training again would spend epsilon a
second time for nothing; re-sending the update already released is free (post-processing of a DP
output). So every released update is stored under (run, round) with the digest of the weights it started
from, and a request for a stored (run, round) is answered from the store only when those weights match:
the same round from other weights would be a second, unaccounted spend, so it is refused instead.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class RoundAlreadySpent(RuntimeError):
    """(run, round) was trained from other global weights: training it again would spend budget twice."""


@dataclass(frozen=True)
class StoredRound:
    incoming: str
    """Digest of the global weights the round started from."""
    weights: dict[str, torch.Tensor]
    metrics: dict[str, Any]


class RoundStore:
    """``STATE/rounds/<run>/<round>.pt``: each written once, atomically."""

    def __init__(self, state: Path) -> None:
        self.root = Path(state) / "rounds"

    def _path(self, run_id: str, round: int) -> Path:
        return self.root / _SAFE.sub("_", run_id) / f"{round}.pt"

    def replay(self, run_id: str, round: int, incoming: str) -> StoredRound | None:
        """The stored update for (run, round) from the same global weights, else None if never trained."""
        path = self._path(run_id, round)
        if not path.exists():
            return None
        data = torch.load(path, weights_only=True)
        stored = StoredRound(data["incoming"], data["weights"], data["metrics"])
        if stored.incoming != incoming:
            raise RoundAlreadySpent(
                f"round {round} of run {run_id!r} was already trained from other global weights "
                f"({stored.incoming[:12]}, now {incoming[:12]}); training it again would spend the privacy "
                "budget twice, so the site refuses: start a new run instead")
        return stored

    def save(self, run_id: str, round: int, stored: StoredRound) -> None:
        path = self._path(run_id, round)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".round-")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save({"incoming": stored.incoming, "weights": stored.weights,
                            "metrics": stored.metrics}, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
