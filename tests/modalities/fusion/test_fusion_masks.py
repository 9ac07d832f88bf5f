"""Masks mask: whatever sits under a 0 mask cannot change a prediction; modality dropout hides
modalities only in training, never all of a sample's, and repeats under a seed."""

from __future__ import annotations

import pytest
import torch

from modalities.fusion import FusionSettings, create_model, fusion_names
from modalities.fusion.dropout import drop_modalities
from modalities.fusion.examples import example_batch
from polyclinic.study import default_study

VARIANTS = fusion_names()
KEYS = {"imaging": ("image",), "records": ("records",), "genomics": ("genome", "genome_missing")}


def batch(n: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    return example_batch(default_study(), n, generator=torch.Generator().manual_seed(seed), present=0.5)


def scribble_under_masks(data: dict[str, torch.Tensor], fill: float | None) -> dict[str, torch.Tensor]:
    """``data`` with every masked modality's tensors replaced by noise (``fill=None``) or ``fill``."""
    scribbled = dict(data)
    generator = torch.Generator().manual_seed(99)
    for modality, keys in KEYS.items():
        absent = data[f"{modality}_mask"] == 0
        for key in keys:
            junk = torch.randn(data[key].shape, generator=generator) * 100 if fill is None \
                else torch.full_like(data[key], fill)
            where = absent.view((-1,) + (1,) * (data[key].dim() - 1))
            scribbled[key] = torch.where(where, junk, data[key])
    return scribbled


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fill", [None, float("nan"), float("inf")])
def test_values_under_a_zero_mask_do_not_change_the_output(variant: str, fill: float | None) -> None:
    torch.manual_seed(0)
    net = create_model(default_study(), FusionSettings(fusion=variant, modality_dropout=0.0))
    with torch.no_grad():
        if variant == "gated":
            net.fusion.gates.table.weight.normal_()
        data = batch()
        assert (data["imaging_mask"] == 0).any() and (data["genomics_mask"] == 0).any()
        for mode in (net.eval, net.train):
            mode()
            clean, scribbled = net(data), net(scribble_under_masks(data, fill))
            assert torch.isfinite(clean).all()
            assert torch.equal(clean, scribbled)


def test_a_patient_without_any_modality_gets_a_finite_prior() -> None:
    net = create_model(default_study()).eval()
    data = batch(3)
    for modality in KEYS:
        data[f"{modality}_mask"] = torch.zeros(3)
    logits = net(scribble_under_masks(data, float("nan")))
    assert torch.isfinite(logits).all() and torch.allclose(logits, logits[0].expand(3))


def random_masks(n: int, seed: int) -> torch.Tensor:
    return (torch.rand(n, 3, generator=torch.Generator().manual_seed(seed)) < 0.7).float()


def test_dropout_never_hides_every_present_modality_and_never_invents_one() -> None:
    masks = random_masks(2000, 0)
    dropped = drop_modalities(masks, 0.9, torch.Generator().manual_seed(1))
    had_any = masks.sum(1) > 0
    assert (dropped.sum(1)[had_any] >= 1).all()
    assert (dropped <= masks).all()
    assert (dropped.sum(1)[~had_any] == 0).all()
    assert (dropped.sum(1) < masks.sum(1)).float().mean() > 0.5  # p = 0.9 really drops


def test_dropout_rate_is_close_to_p_where_nothing_forces_a_keep() -> None:
    masks = torch.ones(4000, 3)
    dropped = drop_modalities(masks, 0.2, torch.Generator().manual_seed(2))
    assert abs((1 - dropped).mean().item() - 0.2) < 0.02


def test_dropout_repeats_under_a_seed_and_leaves_the_global_rng_alone() -> None:
    masks = random_masks(500, 3)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = drop_modalities(masks, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(first, drop_modalities(masks, 0.5, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, drop_modalities(masks, 0.5, torch.Generator().manual_seed(8)))


def test_model_drops_modalities_in_training_only_and_reproducibly() -> None:
    settings = FusionSettings(modality_dropout=0.5, seed=4)
    torch.manual_seed(0)
    net = create_model(default_study(), settings)
    torch.manual_seed(0)
    twin = create_model(default_study(), settings)
    data = batch(64, seed=5)
    with torch.no_grad():
        undropped = net.fuse(data, net.masks(data)).logits
        net.eval()
        assert torch.equal(net(data), undropped) and torch.equal(net(data), undropped)
        net.train()
        trained = net(data)
        assert not torch.allclose(trained, undropped)
        assert torch.equal(trained, twin(data))
