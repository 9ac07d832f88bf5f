"""The study's ``[federation]`` section: how the coordinator aggregates and what it waits for.

Rounds are not here: ``[dp] rounds`` is the planned training every site calibrates its noise for, so the
coordinator runs exactly that many rounds and a site's budget is never planned for a different run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modalities.settings import Settings

StrategyName = Literal["fedavg", "fedprox", "trimmed-mean", "krum"]


class FederationSettings(Settings):
    strategy: StrategyName = "fedavg"
    """fedavg (default); fedprox for sites whose data differ a lot; trimmed-mean and krum tolerate a few
    faulty or hostile sites at the cost of discarding honest updates too."""
    fraction_train: float = Field(default=1.0, gt=0, le=1)
    min_sites: int = Field(default=2, ge=1)
    """Sites that must be connected before a round starts and that must reply for it to count."""
    proximal_mu: float = Field(default=0.01, ge=0)
    """fedprox only: weight of the proximal term (sites' local objective, sent in the round config)."""
    trim_beta: float = Field(default=0.2, gt=0, lt=0.5)
    """trimmed-mean only: fraction of the highest and of the lowest values dropped per coordinate."""
    krum_byzantine: int = Field(default=0, ge=0)
    """krum only: how many hostile sites to tolerate."""
    round_timeout_s: float = Field(default=900.0, gt=0)
    """How long the coordinator waits for replies; a site that has not answered by then is left out."""
