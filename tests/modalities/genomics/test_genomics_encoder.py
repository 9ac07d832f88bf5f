"""The genomics encoder: pathway tokens of consecutive genes, missing flags that matter, padding."""

from __future__ import annotations

import pytest
import torch

from modalities.genomics.encoder import GenomicsEncoder


def panel(n: int, genes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    missing = (torch.rand(n, genes, generator=generator) < 0.2).float()
    return torch.randn(n, genes, generator=generator) * (1 - missing), missing


def test_a_gene_moves_only_its_own_pathway_token() -> None:
    encoder = GenomicsEncoder(genes=64, d_model=16, pathway_size=8)
    genome, missing = panel(3, 64)
    tokens = encoder(genome, missing)
    assert tokens.shape == (3, 8, 16)
    changed = genome.clone()
    changed[:, 10] += 3.0  # gene 10 sits in pathway 1 (genes 8..15)
    moved = (encoder(changed, missing) - tokens).abs().amax(dim=(0, 2))
    assert moved[1] > 0
    assert torch.count_nonzero(moved) == 1


def test_missing_is_not_the_same_as_zero_expression() -> None:
    encoder = GenomicsEncoder(genes=16, d_model=16, pathway_size=8)
    genome = torch.zeros(1, 16)
    measured, unmeasured = torch.zeros(1, 16), torch.zeros(1, 16)
    unmeasured[0, 3] = 1.0
    assert not torch.allclose(encoder(genome, measured)[0, 0], encoder(genome, unmeasured)[0, 0])


def test_a_ragged_panel_is_padded_with_missing_genes() -> None:
    """20 genes in groups of 8 give 3 tokens, the last one as if genes 21..24 were measured-missing."""
    ragged = GenomicsEncoder(genes=20, d_model=16, pathway_size=8)
    whole = GenomicsEncoder(genes=24, d_model=16, pathway_size=8)
    whole.load_state_dict(ragged.state_dict())
    genome, missing = panel(2, 20)
    padded_genome = torch.cat([genome, torch.zeros(2, 4)], dim=1)
    padded_missing = torch.cat([missing, torch.ones(2, 4)], dim=1)
    assert ragged.tokens == 3
    torch.testing.assert_close(ragged(genome, missing), whole(padded_genome, padded_missing))


def test_wrong_panel_width_is_a_clear_error() -> None:
    genome, missing = panel(2, 63)
    with pytest.raises(ValueError, match=r"expected genome of shape \(B, 64\) .*got \(2, 63\)"):
        GenomicsEncoder(genes=64, d_model=16)(genome, missing)
