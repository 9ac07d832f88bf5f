"""The gene panel as pathway tokens: consecutive genes form a group, each group becomes one token.

Each group's token is a linear map of its gene values, its missing flags and a constant 1 (the
group's own bias), with weights of its own. All groups go through *one* ``nn.Linear`` on a
block-diagonal layout (group ``p``'s inputs sit in block ``p``, zeros elsewhere), so the weights
stay separate per group while Opacus sees a single Linear layer, whose per-sample gradient norms
ghost clipping computes without materialising them. Missing flags enter the token so "not
measured" (value 0, flag 1) never reads as "average expression" (value 0, flag 0). A panel that
does not divide into whole groups is padded with genes flagged missing.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F


class GenomicsEncoder(nn.Module):
    """``genome`` and ``genome_missing`` ``(B, G)`` -> tokens ``(B, ceil(G / pathway_size), d_model)``."""

    inputs: ClassVar[tuple[str, ...]] = ("genome", "genome_missing")

    def __init__(self, genes: int, d_model: int, pathway_size: int = 8) -> None:
        super().__init__()
        self.genes = genes
        self.pathway_size = pathway_size
        self.tokens = math.ceil(genes / pathway_size)
        self.block = nn.Linear(self.tokens * (2 * pathway_size + 1), d_model, bias=False)

    def forward(self, genome: torch.Tensor, genome_missing: torch.Tensor) -> torch.Tensor:
        for name, tensor in (("genome", genome), ("genome_missing", genome_missing)):
            if tensor.dim() != 2 or tensor.shape[1] != self.genes:
                raise ValueError(f"genomics: expected {name} of shape (B, {self.genes}) (one column per "
                                 f"panel gene), got {tuple(tensor.shape)}")
        batch, groups, size = genome.shape[0], self.tokens, self.pathway_size
        pad = groups * size - self.genes
        values = F.pad(genome, (0, pad)).reshape(batch, groups, size)
        flags = F.pad(genome_missing, (0, pad), value=1.0).reshape(batch, groups, size)
        ones = genome.new_ones(batch, groups, 1)
        group_inputs = torch.cat([values, flags, ones], dim=-1)
        eye = torch.eye(groups, dtype=genome.dtype, device=genome.device)
        blocks = group_inputs.unsqueeze(1) * eye[None, :, :, None]
        return self.block(blocks.reshape(batch, groups, groups * (2 * size + 1)))
