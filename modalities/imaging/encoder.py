"""The image as a small grid of tokens, built only from layers Opacus computes per-sample gradients for.

A compact strided CNN (Conv2d + GroupNorm + GELU, nothing in place, no BatchNorm, no buffers) turns
the ``(1, H, W)`` tensor into a ``grid x grid`` map; each cell becomes one token plus a learned
position embedding, so the fusion can attend to *where* a finding is (a nodule fills one or two
cells, and averaging it over the whole image would dilute it). Stride-2 convolutions keep the
parameter count and the per-sample-gradient cost small: DP-SGD pays for every trainable weight.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

CHANNELS = (8, 16, 32)
"""Hidden channel widths of the stride-2 stages before the last convolution to ``d_model``."""
GROUP_SIZE = 4
"""Channels per GroupNorm group. GroupNorm normalises each sample on its own, as DP-SGD requires; it
has no affine part, which cost nothing in held-out AUROC on the synthetic check and saves Opacus a
hooked layer per stage (each hook costs DP-SGD time whatever its size)."""
DOWNSAMPLING = 2 ** (len(CHANNELS) + 1)
POSITION_STD = 0.02
"""Position embeddings start small (as in ViT) so that, at first, tokens say what a cell shows more
loudly than where it is; at nn.Embedding's default scale (1) position would drown the features."""


class ImagingEncoder(nn.Module):
    """``image`` ``(B, 1, H, W)`` in [0, 1] -> tokens ``(B, grid * grid, d_model)``."""

    inputs: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, spatial_size: tuple[int, int], d_model: int, grid: int = 4) -> None:
        super().__init__()
        if min(spatial_size) < DOWNSAMPLING * grid:
            raise ValueError(
                f"imaging: spatial size {tuple(spatial_size)} is too small for a {grid}x{grid} token "
                f"grid; set imaging.spatial-size to at least {DOWNSAMPLING * grid} per side or lower "
                "fusion.image-grid"
            )
        self.spatial_size = tuple(spatial_size)
        layers: list[nn.Module] = []
        width = 1
        for channels in CHANNELS:
            layers += [
                nn.Conv2d(width, channels, kernel_size=3, stride=2, padding=1),
                nn.GroupNorm(channels // GROUP_SIZE, channels, affine=False),
                nn.GELU(),
            ]
            width = channels
        layers.append(nn.Conv2d(width, d_model, kernel_size=3, stride=2, padding=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.position = nn.Embedding(grid * grid, d_model)
        nn.init.normal_(self.position.weight, std=POSITION_STD)
        self.tokens = grid * grid

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 1 or tuple(image.shape[2:]) != self.spatial_size:
            raise ValueError(f"imaging: expected image of shape (B, 1, {self.spatial_size[0]}, "
                             f"{self.spatial_size[1]}), got {tuple(image.shape)}")
        cells = self.pool(self.features(image)).flatten(2).transpose(1, 2)
        # repeat, not expand: Opacus' ghost-clipping norm sampler for Embedding views the indices flat
        where = torch.arange(self.tokens, device=image.device).repeat(image.shape[0], 1)
        return cells + self.position(where)
