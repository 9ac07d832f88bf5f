"""The imaging encoder: a grid of tokens per image, blobs found where edges are not, per-sample
independence, Opacus compatibility, clear shape errors."""

from __future__ import annotations

import pytest
import torch
from opacus.validators import ModuleValidator

from modalities.imaging.encoder import ImagingEncoder, blobness, hessian_filters


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


def disc(radius: float, centre: tuple[int, int] = (20, 40), size: int = 64) -> torch.Tensor:
    rows, cols = torch.arange(size)[:, None], torch.arange(size)[None, :]
    return (((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) <= radius**2).float()[None, None]


def peak_blobness(image: torch.Tensor) -> torch.Tensor:
    """Per-scale maximum over the image's interior (no padding: where a band meets the border it ends,
    and an end is blob-like; in a CT the border is air, dark like the zero padding), ``(B, scales)``."""
    return blobness(torch.nn.functional.conv2d(image, hessian_filters())).flatten(2).amax(-1)


@pytest.mark.parametrize("radius", [1.5, 2.0, 3.0])
def test_a_bright_disc_answers_far_above_an_edge_or_a_band(radius: float) -> None:
    """A nodule-sized disc is a blob; a half-plane (body outline) and a bright band (mediastinum between
    dark lungs) curve one way only and must stay near zero, or they would hide the nodule in the max."""
    rows = torch.arange(64)[:, None].expand(64, 64)
    edge = (rows >= 32).float()[None, None]
    band = ((rows >= 28) & (rows < 34)).float()[None, None]
    blob = peak_blobness(disc(radius)).max()
    assert blob > 0.3
    assert peak_blobness(edge).max() < 0.02 * blob
    assert peak_blobness(band).max() < 0.02 * blob


def test_flat_images_of_any_brightness_answer_nothing() -> None:
    assert peak_blobness(torch.full((2, 1, 64, 64), 0.7)).abs().max() < 1e-5


def test_a_nodule_raises_the_token_of_its_cell_only() -> None:
    """Max pooling: the cell holding the blob changes; the other cells' tokens do not."""
    encoder = ImagingEncoder((64, 64), d_model=8, grid=2)
    background = torch.zeros(1, 1, 64, 64)
    tokens = encoder(torch.cat([background, disc(2.0, centre=(16, 48))]))
    changed = (tokens[1] - tokens[0]).abs().amax(-1)
    assert changed[1] > 0.1  # row 0, column 1 of the 2x2 grid
    assert torch.all(changed[[0, 2, 3]] < 1e-6)


def test_frozen_features_leave_few_trained_weights() -> None:
    """What ``fusion.freeze-image-features`` leaves to DP-SGD: the projection and the position embedding."""
    encoder = ImagingEncoder((64, 64), d_model=8, grid=2)
    encoder.features.requires_grad_(False)
    assert sum(p.numel() for p in encoder.parameters() if p.requires_grad) == (3 + 1 + 4) * 8


def test_too_small_an_image_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"imaging\.spatial-size to at least 32"):
        ImagingEncoder((16, 16), d_model=16, grid=4)


def test_wrong_image_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected image of shape \(B, 1, 64, 64\), got \(2, 1, 32, 32\)"):
        ImagingEncoder((64, 64), d_model=16)(images(2, 32))
