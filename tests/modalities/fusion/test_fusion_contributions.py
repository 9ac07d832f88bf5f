"""Per-modality contributions: exact on a model whose answer is known, zero for what a patient lacks,
attention shares that add up, and a model left as it was found."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modalities.fusion import FusionOutput, FusionSettings, contributions, create_model, fusion_names, predict
from modalities.fusion.examples import example_batch
from polyclinic.study import default_study

WEIGHTS = torch.tensor([2.0, -1.0, 0.5])
"""Logit added by imaging, records and genomics in the constructed model below."""


class PresenceFusion(nn.Module):
    """logit = -0.3 + sum of WEIGHTS over present modalities: contributions follow in closed form."""

    def forward(self, tokens: list[torch.Tensor], masks: torch.Tensor) -> FusionOutput:
        return FusionOutput(masks @ WEIGHTS - 0.3, masks / masks.sum(1, keepdim=True).clamp_min(1))


def batch(n: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    return example_batch(default_study(), n, generator=torch.Generator().manual_seed(seed), present=0.6)


def test_contributions_are_the_probability_lost_without_each_modality() -> None:
    net = create_model(default_study(), FusionSettings(fusion="late"))  # every modality through the fusion
    net.fusion = PresenceFusion()
    data = batch()
    masks = net.masks(data)
    full = torch.sigmoid(masks @ WEIGHTS - 0.3)
    found = contributions(net, data)
    assert list(found) == ["imaging", "records", "genomics"]
    for index, name in enumerate(found):
        expected = full - torch.sigmoid((masks @ WEIGHTS - 0.3) - masks[:, index] * WEIGHTS[index])
        torch.testing.assert_close(found[name], expected)
        present = masks[:, index] > 0
        assert (torch.sign(found[name][present]) == torch.sign(WEIGHTS[index])).all()
        assert (found[name][~present] == 0).all()


@pytest.mark.parametrize("variant", fusion_names())
def test_every_variant_explains_every_prediction(variant: str) -> None:
    torch.manual_seed(0)
    net = create_model(default_study(), FusionSettings(fusion=variant)).train()
    if variant == "gated":
        with torch.no_grad():
            net.fusion.gates.table.weight.normal_()
    data = batch()
    result = predict(net, data)
    assert net.training, "predict must leave the model in the mode it found it"
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(result.probability, torch.sigmoid(net(data)))
    masks = net.masks(data)
    for index, name in enumerate(net.modalities):
        assert result.contributions[name].shape == (16,)
        assert (result.contributions[name][masks[:, index] == 0] == 0).all()
    if variant in ("concat", "late"):
        assert result.attention == {}
        return
    shares = torch.stack([result.attention[name] for name in net.modalities], dim=1)
    assert (shares[masks == 0] == 0).all()
    torch.testing.assert_close(shares.sum(1), torch.ones(16))
