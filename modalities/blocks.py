"""Separate small linear maps for several groups through one ``nn.Linear``: the block-diagonal layout.

Opacus hooks every trained module, and on a model this small the hooks, not the arithmetic, are most of
what a DP step costs over a plain one. Groups that each need a linear map of their own (genomics pathways,
the ``late`` fusion's per-modality terms) are laid out so that one Linear serves them all: group ``g``'s
inputs sit in block ``g`` of a row that is zero elsewhere, so only block ``g``'s weights ever see them and
the groups stay as separate as with one Linear each, while Opacus sees, and clips, a single layer.
"""

from __future__ import annotations

import torch


def block_diagonal(inputs: torch.Tensor) -> torch.Tensor:
    """``(B, G, S)`` -> ``(B, G, G * S)``: row ``g`` holds group ``g``'s ``S`` inputs in block ``g``, zeros
    elsewhere; a Linear with ``G * S`` inputs then applies its block ``g`` to group ``g`` alone."""
    batch, groups, size = inputs.shape
    eye = torch.eye(groups, dtype=inputs.dtype, device=inputs.device)
    return (inputs.unsqueeze(1) * eye[None, :, :, None]).reshape(batch, groups, groups * size)
