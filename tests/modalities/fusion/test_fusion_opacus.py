"""Every fusion variant is a model Opacus can train: nothing to fix, and per-sample gradients (hooks),
per-sample gradient norms (ghost clipping) and torch.func per-sample gradients all equal what one
backward pass per sample gives."""

from __future__ import annotations

import pytest
import torch
from opacus import GradSampleModule
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.validators import ModuleValidator
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from modalities.fusion import FusionModel, FusionSettings, create_model, fusion_names
from modalities.fusion.examples import example_batch
from polyclinic.study import default_study

VARIANTS = ["concat", "gated", "late", "perceiver"]
BATCH = 4
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")


def model(variant: str) -> FusionModel:
    torch.manual_seed(0)
    built = create_model(default_study(), FusionSettings(fusion=variant, d_model=16, modality_dropout=0.0))
    if variant == "gated":  # open the gates, which start shut, so every weight gets a gradient
        with torch.no_grad():
            built.fusion.gates.table.weight.normal_()
    return built


def batch() -> dict[str, torch.Tensor]:
    return example_batch(default_study(), BATCH, generator=torch.Generator().manual_seed(3), present=0.6)


def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")


def one_at_a_time(net: FusionModel, data: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    grads = []
    for i in range(BATCH):
        net.zero_grad(set_to_none=True)
        sample = {k: v[i : i + 1] for k, v in data.items()}
        loss(net(sample), sample["label"]).backward()
        grads.append({n: p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                      for n, p in net.named_parameters()})
    net.zero_grad(set_to_none=True)
    return grads


def test_every_variant_is_tested() -> None:
    assert sorted(fusion_names()) == VARIANTS


@pytest.mark.parametrize("variant", VARIANTS)
def test_module_validator_finds_nothing_to_fix(variant: str) -> None:
    assert ModuleValidator.validate(model(variant), strict=False) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_hooks_per_sample_gradients_match_one_sample_at_a_time(variant: str) -> None:
    net, data = model(variant), batch()
    expected = one_at_a_time(net, data)
    sampler = GradSampleModule(net, loss_reduction="sum")
    loss(sampler(data), data["label"]).backward()
    for name, param in net.named_parameters():
        for i in range(BATCH):
            torch.testing.assert_close(param.grad_sample[i], expected[i][name], rtol=1e-4, atol=1e-6,
                                       msg=lambda m, n=name, i=i: f"{n}, sample {i}: {m}")
    assert any(expected[i][name].abs().sum() > 0 for i in range(BATCH) for name in expected[i])
    sampler._close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_ghost_clipping_norms_match_one_sample_at_a_time(variant: str) -> None:
    net, data = model(variant), batch()
    expected = torch.stack([torch.sqrt(sum((g**2).sum() for g in grads.values()))
                            for grads in one_at_a_time(net, data)])
    ghost = GradSampleModuleFastGradientClipping(net, loss_reduction="sum", max_grad_norm=1.0,
                                                 use_ghost_clipping=True)
    loss(ghost(data), data["label"]).backward()
    torch.testing.assert_close(ghost.get_norm_sample(), expected, rtol=1e-4, atol=1e-6)
    ghost._close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_func_per_sample_gradients_match_one_sample_at_a_time(variant: str) -> None:
    """vmap over single samples: the path a custom DP step can take instead of per-layer hooks."""
    net, data = model(variant), batch()
    expected = one_at_a_time(net, data)
    params = {n: p.detach() for n, p in net.named_parameters()}

    def sample_loss(weights: dict[str, torch.Tensor], sample: dict[str, torch.Tensor]) -> torch.Tensor:
        single = {k: v.unsqueeze(0) for k, v in sample.items()}
        return loss(functional_call(net, weights, (single,)), single["label"])

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0))(params, data)
    for name, grads in per_sample.items():
        for i in range(BATCH):
            torch.testing.assert_close(grads[i], expected[i][name], rtol=1e-4, atol=1e-6)
