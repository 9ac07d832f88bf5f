"""How a site trains under differential privacy: the study's ``[dp]`` section.

The budget itself (epsilon, delta) is the site's, from ``site.toml``; these settings only say how to spend
it. ``rounds`` x ``local_epochs`` is the planned training the noise is calibrated for, so a run that keeps
to its plan ends at (not beyond) the budget.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modalities.settings import Settings


class DPSettings(Settings):
    enabled: bool = True
    """False trains without clipping or noise: a baseline for benchmarks, never for data leaving a site."""
    accountant: Literal["prv", "rdp"] = "prv"
    """PRV gives the tighter epsilon (Gopi et al. 2021); RDP is faster and a looser upper bound."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=16, ge=1)
    """Expected batch size: with Poisson sampling each example joins a batch with probability ~B/n."""
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = Field(default=1e-2, gt=0)
    """A site may have only a few batches per epoch; Adam moves each weight by about this much per step."""
    local_epochs: int = Field(default=1, ge=1)
    rounds: int = Field(default=5, ge=1)
    """Planned rounds of one run; the noise is calibrated so that all of them fit the site's budget."""
    grad_sample_mode: Literal["ghost", "hooks", "functorch"] = "hooks"
    """How Opacus gets per-example gradient norms. DP/non-DP step time, batch 64, this CPU, interleaved
    medians: on a 117k-parameter Conv/GroupNorm/Linear model hooks 2.3-2.7x, ghost 2.5-3.0x (two backward
    passes; Conv has no ghost norm sampler), functorch 3.4-3.9x. Ghost wins where Linear layers dominate
    the compute (100k-parameter MLP: ghost 5.9x, hooks 19x; Linear layers on 8 tokens: ghost 2.5x, hooks
    3.6x), so measure the model actually trained before changing it."""
