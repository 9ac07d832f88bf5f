"""The multimodal fusion model: per-modality token encoders joined by a registered fusion variant.

Importing this package registers the built-in variants ``concat``, ``gated``, ``perceiver`` and ``late``.
"""

from modalities.fusion import concat, gated, late, perceiver  # noqa: F401  (registers the variants)
from modalities.fusion.contributions import Prediction, contributions, predict
from modalities.fusion.model import FusionModel, count_trainable_parameters, create_model
from modalities.fusion.registry import FusionOutput, create_fusion, fusion_names, register_fusion
from modalities.fusion.settings import FusionSettings

__all__ = [
    "FusionModel",
    "FusionOutput",
    "FusionSettings",
    "Prediction",
    "contributions",
    "count_trainable_parameters",
    "create_fusion",
    "create_model",
    "fusion_names",
    "predict",
    "register_fusion",
]
