"""Learned vectors (latents, a query, gates) in a form Opacus can compute per-sample gradients for.

A bare ``nn.Parameter`` on a module has no grad sampler: Opacus hooks fall back to functorch on the
whole owning module, and ghost clipping cannot clip it at all. An ``nn.Embedding`` looked up with
``arange`` repeated over the batch is the same learned table, but every sample "uses" it through an
input with a batch dimension, so both the hooks and the ghost-clipping norm samplers handle it.
"""

from __future__ import annotations

import torch
from torch import nn


class LearnedTokens(nn.Module):
    """``count`` learned vectors of width ``dim``, returned per sample as ``(B, count, dim)``."""

    def __init__(self, count: int, dim: int, *, zero: bool = False) -> None:
        super().__init__()
        self.count = count
        self.table = nn.Embedding(count, dim)
        if zero:
            nn.init.zeros_(self.table.weight)

    def forward(self, batch: int, device: torch.device) -> torch.Tensor:
        # repeat, not expand: Opacus' ghost-clipping norm sampler for Embedding views the indices flat
        return self.table(torch.arange(self.count, device=device).repeat(batch, 1))
