"""The imaging encoder: a grid of tokens per image, per-sample independence, clear shape errors."""

from __future__ import annotations

import pytest
import torch
from opacus.validators import ModuleValidator

from modalities.imaging.encoder import ImagingEncoder


def images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [64, 96])
def test_tokens_are_a_fixed_grid_whatever_the_image_size(size: int) -> None:
    encoder = ImagingEncoder((size, size), d_model=16, grid=4)
    assert encoder(images(3, size)).shape == (3, 16, 16)
    assert encoder.tokens == 16


def test_grid_cells_are_told_apart_by_position() -> None:
    encoder = ImagingEncoder((64, 64), d_model=16)
    tokens = encoder(torch.full((1, 1, 64, 64), 0.5))
    assert torch.unique(tokens[0], dim=0).shape[0] == 16


def test_each_sample_is_encoded_on_its_own() -> None:
    """GroupNorm, not BatchNorm: another patient's image never changes this patient's tokens (DP-SGD
    clips per sample and would be wrong otherwise)."""
    encoder = ImagingEncoder((64, 64), d_model=16)
    batch = images(4)
    changed = batch.clone()
    changed[1:] = images(3, seed=1)
    torch.testing.assert_close(encoder(batch)[0], encoder(changed)[0], rtol=0, atol=1e-6)
    assert not torch.allclose(encoder(batch)[1], encoder(changed)[1])


def test_opacus_finds_nothing_to_fix() -> None:
    assert ModuleValidator.validate(ImagingEncoder((64, 64), d_model=16), strict=False) == []


def test_too_small_an_image_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"imaging\.spatial-size to at least 64"):
        ImagingEncoder((32, 32), d_model=16, grid=4)


def test_wrong_image_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected image of shape \(B, 1, 64, 64\), got \(2, 1, 32, 32\)"):
        ImagingEncoder((64, 64), d_model=16)(images(2, 32))
