"""The genomics encoder: per-sample normalisation against a public reference, pathway tokens of
consecutive genes, missing flags that matter, padding."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from modalities.genomics.encoder import GenomicsEncoder, standardise_per_sample
from modalities.genomics.settings import GenomicsSettings


def panel(n: int, genes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    missing = (torch.rand(n, genes, generator=generator) < 0.2).float()
    return (6 + 2 * torch.randn(n, genes, generator=generator)) * (1 - missing), missing


def test_swapping_two_genes_moves_only_their_pathway_token() -> None:
    """A swap inside pathway 1 (genes 8..15) keeps the sample's mean and sd, so only token 1 moves."""
    encoder = GenomicsEncoder(genes=64, d_model=16, pathway_size=8)
    genome, missing = panel(3, 64)
    missing[:, 9:11] = 0.0
    tokens = encoder(genome, missing)
    assert tokens.shape == (3, 8, 16)
    swapped = genome.clone()
    swapped[:, [9, 10]] = genome[:, [10, 9]]
    moved = (encoder(swapped, missing) - tokens).abs().amax(dim=(0, 2))
    assert moved[1] > 0
    assert torch.count_nonzero(moved) == 1


def test_a_pathway_token_moves_along_one_direction_as_its_score_changes() -> None:
    """Each pathway is one activity score: whatever reorders its genes, its token stays on one line."""
    encoder = GenomicsEncoder(genes=64, d_model=16, pathway_size=8)
    genome, missing = panel(1, 64)
    missing.zero_()
    generator = torch.Generator().manual_seed(3)
    shuffled = genome.repeat(6, 1)
    for row in shuffled:  # permutations inside pathway 1 keep the sample's mean and sd
        row[8:16] = row[8:16][torch.randperm(8, generator=generator)]
    with torch.no_grad():
        moves = encoder(shuffled, missing.repeat(6, 1))[:, 1] - encoder(genome, missing)[:, 1]
    assert torch.linalg.matrix_rank(moves, atol=1e-5) == 1


def test_a_sample_is_normalised_on_its_own_genes_alone() -> None:
    """What another patient in the batch holds, and a shift or scale of the whole profile (library
    size, platform), change nothing: no statistic of other patients is computed outside DP-SGD."""
    encoder = GenomicsEncoder(genes=32, d_model=8, pathway_size=8)
    genome, missing = panel(4, 32)
    alone = encoder(genome[:1], missing[:1])
    others = genome.clone()
    others[1:] = others[1:] * 5 + 100
    torch.testing.assert_close(encoder(others, missing)[:1], alone)
    rescaled = (genome[:1] * 1.7 + 3.0) * (1 - missing[:1])
    torch.testing.assert_close(encoder(rescaled, missing[:1]), alone)


def test_standardised_profile_has_zero_mean_unit_sd_over_measured_genes() -> None:
    genome, missing = panel(5, 40)
    z = standardise_per_sample(genome, missing)
    observed = 1 - missing
    count = observed.sum(1)
    torch.testing.assert_close((z * observed).sum(1) / count, torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close((z.pow(2) * observed).sum(1) / count, torch.ones(5), atol=1e-4, rtol=0)
    assert torch.all(z[missing > 0] == 0)


def test_the_reference_levels_genes_of_different_baseline() -> None:
    """A sample at reference + noise reads as the noise alone: per-gene baselines are gone."""
    reference = torch.linspace(4, 10, 16)
    noise = torch.randn(2, 16, generator=torch.Generator().manual_seed(1))
    measured = torch.zeros(2, 16)
    with_reference = GenomicsEncoder(genes=16, d_model=8, pathway_size=8, reference=reference.tolist())
    plain = GenomicsEncoder(genes=16, d_model=8, pathway_size=8)
    plain.load_state_dict(with_reference.state_dict())
    torch.testing.assert_close(with_reference(reference + noise, measured), plain(noise, measured))
    assert not torch.allclose(plain(reference + noise, measured), plain(noise, measured))


def test_the_reference_is_configuration_not_a_weight() -> None:
    encoder = GenomicsEncoder(genes=16, d_model=8, reference=[5.0] * 16)
    assert "reference" not in encoder.state_dict()
    assert [name for name, _ in encoder.named_parameters()] == ["scores.weight", "embed.weight"]


def test_what_a_missing_gene_holds_changes_nothing() -> None:
    encoder = GenomicsEncoder(genes=16, d_model=8, pathway_size=8, reference=[6.0] * 16)
    genome, missing = panel(2, 16)
    missing[:, 3] = 1.0
    tokens = encoder(genome, missing)
    for junk in (0.0, 1e6, float("nan")):
        filled = genome.clone()
        filled[:, 3] = junk
        torch.testing.assert_close(encoder(filled, missing), tokens)


def test_missing_is_not_the_same_as_zero_expression() -> None:
    encoder = GenomicsEncoder(genes=16, d_model=16, pathway_size=8)
    genome, _ = panel(1, 16)
    measured, unmeasured = torch.zeros(1, 16), torch.zeros(1, 16)
    unmeasured[0, 3] = 1.0
    genome[0, 3] = genome[0, torch.arange(16) != 3].mean()  # its normalised value is then 0 either way
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
    with pytest.raises(ValueError, match="reference profile has 3 values for a panel of 64 genes"):
        GenomicsEncoder(genes=64, d_model=16, reference=[1.0, 2.0, 3.0])


def test_the_study_reference_names_every_panel_gene() -> None:
    settings = GenomicsSettings(gene_panel=("B", "A"), reference={"A": 1.0, "B": 2.0})
    assert settings.reference_profile() == (2.0, 1.0)
    assert GenomicsSettings(gene_panel=("A",)).reference_profile() is None
    with pytest.raises(ValidationError, match=r"missing \['B'\].*not in the panel \['C'\]"):
        GenomicsSettings(gene_panel=("A", "B"), reference={"A": 1.0, "C": 2.0})
    with pytest.raises(ValidationError, match=r"not finite \['A'\]"):
        GenomicsSettings(gene_panel=("A",), reference={"A": float("nan")})
