"""``perceiver``: a few learned latents read every modality's tokens, then talk among themselves.

The latents cross-attend to the concatenation of all modality tokens with missing modalities masked
out (a key padding mask from the modality masks), so any subset of modalities is handled by the same
weights and the cost grows linearly in the number of tokens. Self-attention among the latents then
mixes what they read (e.g. "nodule seen" with "CEA high"). The mean latent goes to a linear head.
The attention mass each modality receives, averaged over heads and latents, is its share.
"""

from __future__ import annotations

import torch
from torch import nn

from modalities.fusion.attention import CrossAttention, FeedForward, SelfAttention, layer_norm
from modalities.fusion.learned import LearnedTokens
from modalities.fusion.registry import FusionOutput, register_fusion
from modalities.fusion.settings import FusionSettings
from modalities.fusion.tokens import segment_mass, token_keep


@register_fusion("perceiver")
class PerceiverFusion(nn.Module):
    def __init__(self, settings: FusionSettings, token_counts: tuple[int, ...]) -> None:
        super().__init__()
        width = settings.d_model
        self.token_counts = token_counts
        self.latents = LearnedTokens(settings.latents, width)
        self.read = CrossAttention(width, settings.heads)
        self.read_mlp = FeedForward(width)
        self.mix = SelfAttention(width, settings.heads)
        self.mix_mlp = FeedForward(width)
        self.norm = layer_norm(width)
        self.head = nn.Linear(width, 1)

    def forward(self, tokens: list[torch.Tensor], masks: torch.Tensor) -> FusionOutput:
        context = torch.cat(tokens, dim=1)
        batch = context.shape[0]
        keep = token_keep(masks, self.token_counts)
        latents = self.latents(batch, context.device)
        update, weights = self.read(latents, context, keep[:, None, :].expand(-1, latents.shape[1], -1))
        latents = latents + update
        latents = latents + self.read_mlp(latents)
        latents = latents + self.mix(latents)
        latents = latents + self.mix_mlp(latents)
        logits = self.head(self.norm(latents.mean(1))).squeeze(-1)
        return FusionOutput(logits, segment_mass(weights.mean(dim=(1, 2)), self.token_counts))
