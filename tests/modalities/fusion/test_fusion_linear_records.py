"""``linear_records``: the records as one linear term beside the fusion (the default study's model)."""

from __future__ import annotations

import torch

from modalities.fusion import FusionSettings, create_model, predict
from modalities.fusion.examples import example_batch
from polyclinic.study import default_study


def batch(present: float = 0.6, n: int = 16) -> dict[str, torch.Tensor]:
    return example_batch(default_study(), n, generator=torch.Generator().manual_seed(3), present=present)


def test_the_default_study_adds_a_linear_records_term_to_the_fusion() -> None:
    net = create_model(default_study())
    assert net.fused_modalities == ("imaging", "genomics") and "records" in net.modalities
    assert net.linear_terms["records"].weight.shape == (1, len(batch()["records"][0]))


def test_the_records_term_is_linear_in_the_record_columns() -> None:
    torch.manual_seed(0)
    net = create_model(default_study()).eval()
    data = batch(present=1.0)
    changed = {**data, "records": data["records"] + torch.randn_like(data["records"])}
    with torch.no_grad():
        shift = net(changed) - net(data)
        expected = (changed["records"] - data["records"]) @ net.linear_terms["records"].weight[0]
    torch.testing.assert_close(shift, expected)


def test_a_patient_without_records_gets_no_records_term() -> None:
    torch.manual_seed(0)
    net = create_model(default_study()).eval()
    data = batch()
    absent = data["records_mask"] == 0
    assert absent.any() and (~absent).any()
    garbage = {**data, "records": torch.where(absent[:, None], torch.nan, data["records"])}
    result = predict(net, garbage)
    assert torch.isfinite(result.probability).all()
    torch.testing.assert_close(result.probability, predict(net, data).probability)
    assert (result.contributions["records"][absent] == 0).all()
    with torch.no_grad():
        term = net.linear_terms["records"](data["records"]).squeeze(-1)
        logit = torch.logit(result.probability.double()).float()
    expected = result.probability - torch.sigmoid(logit - term)
    found = result.contributions["records"][~absent]
    torch.testing.assert_close(found, expected[~absent], atol=1e-5, rtol=1e-4)


def test_attention_is_shared_over_the_fused_modalities_only() -> None:
    torch.manual_seed(0)
    net = create_model(default_study(), FusionSettings(fusion="perceiver", linear_records=True))
    data = batch()
    attention = predict(net, data).attention
    assert set(attention) == {"imaging", "genomics"}
    fused = torch.stack([data["imaging_mask"], data["genomics_mask"]], dim=1)
    shares = torch.stack([attention["imaging"], attention["genomics"]], dim=1)
    anything = fused.sum(1) > 0
    torch.testing.assert_close(shares.sum(1)[anything], torch.ones(int(anything.sum())))
