"""The records vector as a few tokens: one small MLP whose output is split into ``tokens`` vectors.

The vector is short (demographics, latest labs with missing flags, comorbidity flags; see
:func:`modalities.records.feature_names`) and its columns interact (a lab value means nothing
without its missing flag), so a shared hidden layer sees all columns at once and the fusion gets a
handful of tokens to attend to, not one per column. Two Linear layers are also what DP-SGD clips
most cheaply (Opacus ghost clipping never materialises their per-sample gradients).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F


def checked_records(records: torch.Tensor, features: int) -> torch.Tensor:
    """``records`` if it is ``(B, features)``, else an error naming the width a batch of another study has
    wrong; every layer that reads the records vector goes through this."""
    if records.dim() != 2 or records.shape[1] != features:
        raise ValueError(f"records: expected a (B, {features}) tensor (one column per "
                         f"modalities.records.feature_names), got {tuple(records.shape)}")
    return records


class RecordsEncoder(nn.Module):
    """``records`` ``(B, F)``, on the fixed scale ``feature_names`` states -> ``(B, tokens, d_model)``."""

    inputs: ClassVar[tuple[str, ...]] = ("records",)

    def __init__(self, features: int, d_model: int, tokens: int = 4) -> None:
        super().__init__()
        self.features = features
        self.tokens = tokens
        self.d_model = d_model
        self.hidden = nn.Linear(features, 2 * d_model)
        self.project = nn.Linear(2 * d_model, tokens * d_model)

    def forward(self, records: torch.Tensor) -> torch.Tensor:
        flat = self.project(F.gelu(self.hidden(checked_records(records, self.features))))
        return flat.view(records.shape[0], self.tokens, self.d_model)
