"""Fusion settings, the variant registry and the model factory: typed, strict, no silent overwrite."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from modalities.fusion import (
    FusionSettings,
    count_trainable_parameters,
    create_fusion,
    create_model,
    fusion_names,
    register_fusion,
)
from modalities.fusion.concat import ConcatFusion
from modalities.fusion.examples import example_batch
from polyclinic.study import default_study

PARAMETER_BUDGET = 150_000
"""DP-SGD noise and per-sample clipping cost grow with every trainable weight; keep the model small."""


def test_settings_are_kebab_case_frozen_and_strict() -> None:
    settings = FusionSettings.model_validate({"fusion": "gated", "d-model": 48, "modality-dropout": 0.3})
    assert (settings.fusion, settings.d_model, settings.modality_dropout) == ("gated", 48, 0.3)
    with pytest.raises(ValidationError):
        FusionSettings.model_validate({"fusion": "tensor"})
    with pytest.raises(ValidationError):
        FusionSettings.model_validate({"dmodel": 32})
    with pytest.raises(ValidationError):
        FusionSettings(modality_dropout=1.0)
    with pytest.raises(ValidationError):
        settings.d_model = 8


def test_heads_must_divide_the_width_and_the_error_says_so() -> None:
    with pytest.raises(ValidationError, match=r"d-model \(30\) must be a multiple of heads \(4\)"):
        FusionSettings(d_model=30, heads=4)


def test_registry_refuses_a_silent_overwrite_and_names_what_exists() -> None:
    with pytest.raises(ValueError, match="already registered by ConcatFusion"):
        register_fusion("concat")(type("Other", (torch.nn.Module,), {}))
    assert register_fusion("concat")(ConcatFusion) is ConcatFusion
    with pytest.raises(ValueError, match="unknown fusion 'tensor'; registered: concat, gated, late, perc"):
        create_fusion("tensor", FusionSettings(), (16, 4, 8))
    assert fusion_names() == ["concat", "gated", "late", "perceiver"]


@pytest.mark.parametrize("variant", fusion_names())
def test_every_variant_fits_the_parameter_budget(variant: str) -> None:
    net = create_model(default_study(), FusionSettings(fusion=variant))
    assert 10_000 < count_trainable_parameters(net) < PARAMETER_BUDGET
    assert type(net.fusion).__name__.lower().startswith(variant)


def test_the_study_fusion_section_is_used_when_present() -> None:
    class StudyWithFusion:
        imaging, records, genomics = (getattr(default_study(), n) for n in ("imaging", "records", "genomics"))
        fusion = FusionSettings(fusion="concat")

    assert isinstance(create_model(StudyWithFusion()).fusion, ConcatFusion)
    assert create_model(default_study()).settings == default_study().fusion


def test_a_batch_missing_a_key_names_it_and_the_contract() -> None:
    net = create_model(default_study())
    data = example_batch(default_study(), 2, generator=torch.Generator().manual_seed(0))
    del data["genomics_mask"]
    with pytest.raises(KeyError, match=r"batch has no 'genomics_mask'.*client\.cohort_dataset"):
        net(data)


def test_a_batch_of_another_study_is_refused_with_the_expected_width() -> None:
    net = create_model(default_study())
    data = example_batch(default_study(), 2, generator=torch.Generator().manual_seed(0))
    data["records"] = data["records"][:, :-1]
    with pytest.raises(ValueError, match=r"records: expected a \(B, 21\) tensor"):
        net(data)
