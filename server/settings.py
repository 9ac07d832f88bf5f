"""The study's ``[federation]`` section: how the coordinator aggregates and what it waits for.

Rounds are not here: ``[dp] rounds`` is the planned training every site calibrates its noise for, so the
coordinator runs exactly that many rounds and a site's budget is never planned for a different run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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
    secure_aggregation: bool = False
    """SecAgg+ (Flower's legacy workflow): the coordinator only ever sees the sum of the sites' masked
    updates. Needs a strategy that only averages (fedavg, fedprox); no resume after a coordinator crash."""
    secagg_shares: float = Field(default=1.0, gt=0, le=1)
    """Fraction of the round's sites each site shares its key with (1.0: all of them)."""
    secagg_threshold: float = Field(default=0.67, gt=0, le=1)
    """Fraction of those shares needed to unmask: fewer colluding sites learn nothing of one site."""
    secagg_update_clip: float = Field(default=5.0, gt=0)
    """L2 bound of a site's update before quantisation (also SecAgg+'s clipping range)."""
    secagg_max_weight: float = Field(default=1000.0, gt=0)
    """Example counts above this are capped when weighting a site's update."""

    @model_validator(mode="after")
    def _secure_needs_plain_averaging(self) -> FederationSettings:
        if self.secure_aggregation and self.strategy in ("trimmed-mean", "krum"):
            raise ValueError(f"secure-aggregation hides each site's update, which {self.strategy} needs; "
                             "choose strategy fedavg or fedprox, or turn secure-aggregation off")
        return self
