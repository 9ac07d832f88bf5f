"""The gene panel as pathway tokens: consecutive genes form a group, each group becomes one token.

Gene values are first read against the study's public reference profile, if it states one, and
normalised per sample (:func:`standardise_per_sample`): centred and scaled over that sample's own
measured genes. A sample's inputs thus depend on that sample alone, so DP-SGD's per-sample clipping covers the
normalisation too and no statistic of a site's patients is ever computed outside it. Per-sample
normalisation removes what shifts or scales a whole profile (library size, platform, a site's overall
offset); a per-gene batch effect of one site (some genes read high there) is not removable from one
sample and stays for the model to learn around.

Each group (pathway) becomes one activity score, a linear map of its gene values, its missing flags and
a constant 1 with weights of its own, as gene-set methods score a pathway; the token is then that score
times a direction of the pathway's own plus the pathway's offset. So a pathway has one weight per gene
and flag, not one per gene, flag and token dimension: on the default panel 196 weights instead of 1,056.
Measured on 12 synthetic federations with the ``late`` fusion (``docs/benchmarks.md``): the wider form
fitted its training patients (a genomics-only model scored AUROC 0.96 on them and 0.58-0.65 on held-out
patients of the same sites, where the signature genes' plain mean scores 0.75) and made the fusion
worse with genomics than without it. With scores the fusion's held-out AUROC rose from 0.798 to 0.817
without DP and from 0.806 to 0.816 at epsilon 8, fell from 0.774 to 0.764 at epsilon 1, and with the
records hidden the fusion now beats an imaging-only model (1.011 of it, against 0.937).

Both maps go through one ``nn.Linear`` each on a block-diagonal layout (:mod:`modalities.blocks`), so the
weights stay separate per pathway while Opacus sees two Linear layers. Missing flags enter the score so
"not measured" (value 0, flag 1) never reads as "average expression" (value 0, flag 0). A panel that
does not divide into whole groups is padded with genes flagged missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from modalities.blocks import block_diagonal

EPS = 1e-6


class GenomicsEncoder(nn.Module):
    """``genome`` (log-expression, 0 where missing) and ``genome_missing`` ``(B, G)`` -> tokens
    ``(B, ceil(G / pathway_size), d_model)``; ``reference``: the study's public profile, panel order."""

    inputs: ClassVar[tuple[str, ...]] = ("genome", "genome_missing")

    def __init__(self, genes: int, d_model: int, pathway_size: int = 8,
                 reference: Sequence[float] | None = None) -> None:
        super().__init__()
        if reference is not None and len(reference) != genes:
            raise ValueError(f"genomics: the reference profile has {len(reference)} values for a panel of "
                             f"{genes} genes; give one per panel gene")
        self.genes = genes
        self.pathway_size = pathway_size
        self.tokens = math.ceil(genes / pathway_size)
        self.scores = nn.Linear(self.tokens * (2 * pathway_size + 1), 1, bias=False)
        """Per pathway: one weight per gene value and missing flag, and its bias (its input is 1)."""
        self.embed = nn.Linear(self.tokens * 2, d_model, bias=False)
        """Per pathway: the direction its score moves the token in, and the token's offset."""
        profile = torch.zeros(genes) if reference is None else torch.tensor(reference, dtype=torch.float32)
        self.register_buffer("reference", profile, persistent=False)
        """Study configuration, not a learned weight: rebuilt from the study, never sent or averaged."""

    def normalised(self, genome: torch.Tensor, genome_missing: torch.Tensor) -> torch.Tensor:
        """Gene values read against the reference profile, then standardised per sample (module docstring)."""
        return standardise_per_sample(genome - self.reference, genome_missing)

    def forward(self, genome: torch.Tensor, genome_missing: torch.Tensor) -> torch.Tensor:
        for name, tensor in (("genome", genome), ("genome_missing", genome_missing)):
            if tensor.dim() != 2 or tensor.shape[1] != self.genes:
                raise ValueError(f"genomics: expected {name} of shape (B, {self.genes}) (one column per "
                                 f"panel gene), got {tuple(tensor.shape)}")
        genome = self.normalised(genome, genome_missing)
        batch, groups, size = genome.shape[0], self.tokens, self.pathway_size
        pad = groups * size - self.genes
        values = F.pad(genome, (0, pad)).reshape(batch, groups, size)
        flags = F.pad(genome_missing, (0, pad), value=1.0).reshape(batch, groups, size)
        ones = genome.new_ones(batch, groups, 1)
        scores = self.scores(block_diagonal(torch.cat([values, flags, ones], dim=-1)))
        return self.embed(block_diagonal(torch.cat([scores, ones], dim=-1)))


def standardise_per_sample(values: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """Each row centred on the mean and scaled by the sd of its own measured entries; 0 where missing
    (a row with fewer than two distinct measured values is all 0)."""
    observed = missing < 0.5
    count = observed.sum(1, keepdim=True).clamp_min(1)
    zero = values.new_zeros(())
    mean = torch.where(observed, values, zero).sum(1, keepdim=True) / count
    centred = torch.where(observed, values - mean, zero)
    sd = (centred.pow(2).sum(1, keepdim=True) / count).sqrt()
    return centred / sd.clamp_min(EPS)

