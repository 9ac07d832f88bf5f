"""``concat``: the early-fusion baseline every other variant has to beat.

Each modality's tokens are averaged into one vector, zeroed when the modality is missing, and the
vectors are concatenated with the masks themselves (so "missing" is an input, not a silent zero) and
fed to an MLP. No attention, so no attention mass: its contributions come from masking alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from modalities.fusion.attention import layer_norm
from modalities.fusion.registry import FusionOutput, register_fusion
from modalities.fusion.settings import FusionSettings


@register_fusion("concat")
class ConcatFusion(nn.Module):
    def __init__(self, settings: FusionSettings, token_counts: tuple[int, ...]) -> None:
        super().__init__()
        width, modalities = settings.d_model, len(token_counts)
        self.norm = layer_norm(width)
        self.hidden = nn.Linear(modalities * (width + 1), 2 * width)
        self.head = nn.Linear(2 * width, 1)

    def forward(self, tokens: list[torch.Tensor], masks: torch.Tensor) -> FusionOutput:
        pooled = self.norm(torch.stack([t.mean(1) for t in tokens], dim=1))
        present = (masks > 0.5).to(pooled.dtype)
        features = torch.cat([(pooled * present[..., None]).flatten(1), present], dim=1)
        return FusionOutput(self.head(F.gelu(self.hidden(features))).squeeze(-1))
