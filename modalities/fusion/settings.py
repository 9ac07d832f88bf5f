"""What the study asks of the fusion model (the ``[fusion]`` section of ``study.toml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modalities.settings import Settings


class FusionSettings(Settings):
    """Model shape and training-time regularisation, shared by every site of a study.

    ``perceiver`` is the default. On a synthetic check (label spread over all three modalities, each
    missing for a quarter of patients; Adam lr 1e-3, 800 steps, 4 seeds) held-out AUROC was perceiver
    0.923, concat 0.918, gated 0.915: within seed noise of each other, so the tie goes to the variant
    that gives per-sample attention shares and scales to more tokens. The federation's utility
    benchmark is the place to overturn this. Attention variants prefer Adam steps of 1e-3 or less (at
    3e-3 the perceiver stalled at chance on 1 seed in 8). ``late`` (per-modality logits, summed) is the
    default study's, for its small DP sites: ``polyclinic/study.py`` has the figures.
    ``modality_dropout`` is the probability that a present modality is hidden from one training
    sample (never all of them), so the model learns to predict from whatever a patient has; ``seed``
    seeds that dropout's own generator. ``records_tokens``, ``pathway_size`` (genes per pathway
    token) and ``image_grid`` (tokens per image side) set how many tokens each encoder emits.
    """

    fusion: Literal["concat", "gated", "perceiver", "late"] = "perceiver"
    d_model: int = Field(default=32, ge=4)
    heads: int = Field(default=4, ge=1)
    latents: int = Field(default=4, ge=1)
    records_tokens: int = Field(default=4, ge=1)
    pathway_size: int = Field(default=8, ge=1)
    image_grid: int = Field(default=4, ge=1)
    modality_dropout: float = Field(default=0.15, ge=0, lt=1)
    seed: int = 0
    freeze_image_features: bool = False
    """Keep the imaging encoder's filters at their fixed initialisation (blob detectors, see
    :mod:`modalities.imaging.encoder`) and train only what comes after. DP-SGD's noise grows with the
    number of trained weights while a site's signal does not, so on small cohorts fewer trained weights
    can learn more; frozen layers also cost DP-SGD nothing."""

    linear_records: bool = False
    """The records enter as one linear term of their fixed-scale columns (age, sex, labs with missing
    flags, comorbidity flags), added to the fused logit, instead of through an encoder and the fusion:
    the "wide" part of Wide & Deep (Cheng et al. 2016). One weight per column and a bias, where an
    encoder trains hundreds; ``polyclinic/study.py`` has why the default study uses it."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> FusionSettings:
        if self.d_model % self.heads:
            raise ValueError(f"d-model ({self.d_model}) must be a multiple of heads ({self.heads}); "
                             f"e.g. d-model = {self.heads * max(1, round(self.d_model / self.heads))}")
        return self
