"""``gated``: Flamingo-style tanh-gated cross-attention from a learned query to each modality.

A learned query token is the model's running state. It cross-attends to each modality's tokens
separately (one attention over the concatenated tokens with a per-modality block mask, so the
projections are single Linear layers) and adds each modality's read-out through its own gate
``tanh(alpha_m)``. Gates start at 0, as in Flamingo: the untrained model is a constant prior and a
modality is let in only as far as training finds it useful, which keeps a noisy modality from
swamping a good one early in DP training. An ungated MLP follows, playing the part of the language
model block Flamingo interleaves with its gated layers (with that MLP gated too, nothing nonlinear
sits after the read-out at the start and image findings were not learned). Each modality's share of
the gated update (its norm, per sample) is reported as its mass.
"""

from __future__ import annotations

import torch
from torch import nn

from modalities.fusion.attention import CrossAttention, FeedForward, layer_norm
from modalities.fusion.learned import LearnedTokens
from modalities.fusion.registry import FusionOutput, register_fusion
from modalities.fusion.settings import FusionSettings
from modalities.fusion.tokens import token_keep

EPS = 1e-12


@register_fusion("gated")
class GatedFusion(nn.Module):
    def __init__(self, settings: FusionSettings, token_counts: tuple[int, ...]) -> None:
        super().__init__()
        width, modalities = settings.d_model, len(token_counts)
        self.token_counts = token_counts
        self.query = LearnedTokens(1, width)
        self.gates = LearnedTokens(modalities, 1, zero=True)
        self.read = CrossAttention(width, settings.heads)
        self.mlp = FeedForward(width)
        self.norm = layer_norm(width)
        self.head = nn.Linear(width, 1)

    def forward(self, tokens: list[torch.Tensor], masks: torch.Tensor) -> FusionOutput:
        context = torch.cat(tokens, dim=1)
        batch, modalities = context.shape[0], len(tokens)
        slots = torch.arange(modalities, device=context.device)
        owner = slots.repeat_interleave(torch.tensor(self.token_counts, device=context.device))
        keep = token_keep(masks, self.token_counts)[:, None, :] & (owner[None, :] == slots[:, None])
        query = self.query(batch, context.device)
        update, _ = self.read(query.expand(-1, modalities, -1), context, keep)
        present = (masks > 0.5).to(update.dtype)[..., None]
        gated = update * torch.tanh(self.gates(batch, context.device)) * present
        state = query[:, 0] + gated.sum(1)
        state = state + self.mlp(state)
        logits = self.head(self.norm(state)).squeeze(-1)
        size = gated.norm(dim=-1)
        return FusionOutput(logits, size / size.sum(1, keepdim=True).clamp_min(EPS))
