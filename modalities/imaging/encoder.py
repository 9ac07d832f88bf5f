"""The image as a small grid of tokens: blob detectors, max-pooled per cell, projected to ``d_model``.

The finding this platform looks for in a chest CT is a small round opacity (a nodule, a few pixels
across at the model's resolution). A frozen *random* CNN, average-pooled to a 2x2 grid, lost it: on
the synthetic federation (537 series at 64x64) a logistic regression on those features scored AUROC
0.50-0.55 for the label, while the nodule area measured in the same 64x64 images scores 0.70.

So the first layer is a fixed bank of Gaussian second-derivative filters (Lxx, Lyy, Lxy at a few
scales, scale-normalised by sigma^2), set deterministically rather than drawn at random, and each pixel's
*blobness* is the weaker of the two principal curvatures of the intensity (the smaller eigenvalue of
minus the Hessian, floored at 0). A bright blob curves down both ways and answers strongly; an edge or a
bright band (the mediastinum between the lungs, the body outline) curves one way only and answers
barely at all, which a Laplacian-of-Gaussian (the sum of both curvatures) cannot tell apart (its best
scale scored 0.62-0.67 on the synthetic data, this one 0.72-0.74). Max pooling then keeps a blob anywhere
in a cell at full strength where averaging would divide it by the cell's area. A linear map from the
scales to ``d_model`` plus a position embedding makes each cell one token.

With ``fusion.freeze-image-features`` that map and the position embedding are the only trained imaging
weights ((3 + 1 + grid^2) x d_model: 64 at d-model 8, grid 2), since DP-SGD pays for every trained
weight; without it the filters are trained too, starting from the blob detectors. Every layer is one
Opacus computes per-sample gradients for, nothing is in place, and each sample is encoded on its own.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

SCALES = (1.0, 1.5, 2.0)
"""Gaussian sigmas of the blob filters, in pixels of the model's image. A bright disc answers most at
sigma about its radius / 1.5; at 64 px over the synthetic scanners' ~90 mm field of view these
scales suit nodules of about 4 to 8 mm, and both smaller and larger ones still answer. On the synthetic
federation a scale of 3 px added nothing (AUROC 0.56 alone) but edges of the anatomy."""
TRUNCATE = 3.0
"""Filters reach ``TRUNCATE`` sigmas of the largest scale, where the Gaussian is below 1.2 % of its peak."""
EPS = 1e-8
"""Keeps the square root's gradient finite where the two curvatures are equal (trained filters)."""
MIN_CELL = 8
"""Fewest pixels per side of a grid cell, so a cell can hold a blob of the largest scale."""
BACKGROUND = 0.05
"""Blobness at which a cell without a nodule typically peaks (0.04-0.05 on the synthetic federation)."""
GAIN = 10.0
"""With ``BACKGROUND``, puts a cell's peak blobness on a centred scale where a clear nodule gives about +1.
The projection could absorb any offset and scale, but training cannot: with raw blobness (always >= 0)
the first Adam steps used the feature as a second intercept, and the imaging-only model ranked
patients backwards in 1 of 3 seeds (AUROC 0.33; in 3 of 3 with a zero-initialised projection) after
the utility benchmark's 35 steps; centred, 0.61-0.67 in all 8 seeds tried."""
POSITION_STD = 0.02
"""Position embeddings start small (as in ViT) so that, at first, tokens say what a cell shows more
loudly than where it is; at nn.Embedding's default scale (1) position would drown the features."""


def hessian_filters(scales: tuple[float, ...] = SCALES, truncate: float = TRUNCATE) -> torch.Tensor:
    """``(3 * len(scales), 1, k, k)`` kernels: ``sigma^2`` times the Gaussian's Lxx, Lyy, Lxy per scale.

    The second derivatives along x and y are shifted to sum to zero, as the continuous ones do, so a
    flat region of any brightness gives exactly zero however far the kernel is truncated.
    """
    radius = math.ceil(truncate * max(scales))
    axis = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = axis[:, None], axis[None, :]
    kernels = []
    for sigma in scales:
        gauss = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
        gauss = gauss / gauss.sum()
        xx = (x**2 / sigma**4 - 1 / sigma**2) * gauss
        yy = (y**2 / sigma**4 - 1 / sigma**2) * gauss
        xy = x * y / sigma**4 * gauss
        kernels += [sigma**2 * (xx - xx.mean()), sigma**2 * (yy - yy.mean()), sigma**2 * xy]
    return torch.stack(kernels)[:, None].float()


def blobness(hessian: torch.Tensor) -> torch.Tensor:
    """``(B, 3 * S, H, W)`` (Lxx, Lyy, Lxy per scale) -> ``(B, S, H, W)``: the smaller eigenvalue of
    minus the Hessian, floored at 0 (large only where the intensity peaks in every direction)."""
    lxx, lyy, lxy = hessian.unflatten(1, (-1, 3)).unbind(2)
    spread = torch.sqrt((lxx - lyy) ** 2 + 4 * lxy**2 + EPS)
    return torch.relu(-(lxx + lyy) - spread) / 2


class ImagingEncoder(nn.Module):
    """``image`` ``(B, 1, H, W)`` in [0, 1] -> tokens ``(B, grid * grid, d_model)``."""

    inputs: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, spatial_size: tuple[int, int], d_model: int, grid: int = 4) -> None:
        super().__init__()
        if min(spatial_size) < MIN_CELL * grid:
            raise ValueError(
                f"imaging: spatial size {tuple(spatial_size)} is too small for a {grid}x{grid} token "
                f"grid; set imaging.spatial-size to at least {MIN_CELL * grid} per side or lower "
                "fusion.image-grid"
            )
        self.spatial_size = tuple(spatial_size)
        kernels = hessian_filters()
        self.features = nn.Conv2d(1, kernels.shape[0], kernel_size=kernels.shape[-1],
                                  padding=kernels.shape[-1] // 2, bias=False)
        with torch.no_grad():
            self.features.weight.copy_(kernels)
        self.pool = nn.AdaptiveMaxPool2d(grid)
        self.project = nn.Linear(len(SCALES), d_model)
        self.position = nn.Embedding(grid * grid, d_model)
        nn.init.normal_(self.position.weight, std=POSITION_STD)
        self.tokens = grid * grid

    def cells(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, len(SCALES), grid, grid)``: each cell's strongest blob response per scale, centred so that
        a cell without a nodule reads about 0 and a clear nodule about +1 (``BACKGROUND``, ``GAIN``)."""
        return GAIN * (self.pool(blobness(self.features(image))) - BACKGROUND)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 1 or tuple(image.shape[2:]) != self.spatial_size:
            raise ValueError(f"imaging: expected image of shape (B, 1, {self.spatial_size[0]}, "
                             f"{self.spatial_size[1]}), got {tuple(image.shape)}")
        cells = self.cells(image).flatten(2).transpose(1, 2)
        # repeat, not expand: Opacus' ghost-clipping norm sampler for Embedding views the indices flat
        where = torch.arange(self.tokens, device=image.device).repeat(image.shape[0], 1)
        return self.project(cells) + self.position(where)
