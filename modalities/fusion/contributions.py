"""Per-modality contributions: why the model said what it said, given with every prediction.

Two views, because each answers a different question a clinician asks:

- ``contributions``: how much the probability would fall (or rise) without that modality, i.e.
  ``p(all present) - p(that one masked)``. It is model-agnostic and exact for this patient, and 0 for a
  modality the patient does not have.
- ``attention``: the share of the fusion's attention (``perceiver``) or gated update (``gated``) that
  went to each modality. It shows where the model looked, not what it concluded; ``concat`` has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modalities.fusion.model import Batch, FusionModel


@dataclass(frozen=True)
class Prediction:
    """``probability`` ``(B,)``; ``contributions`` and ``attention``: modality -> ``(B,)``."""

    probability: torch.Tensor
    contributions: dict[str, torch.Tensor]
    attention: dict[str, torch.Tensor]


def predict(model: FusionModel, batch: Batch) -> Prediction:
    """Probabilities with both contribution views, in eval mode (no modality dropout), without grad."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            masks = model.masks(batch)
            full = model.fuse(batch, masks)
            probability = torch.sigmoid(full.logits)
            deltas = {}
            for index, name in enumerate(model.modalities):
                without = masks.clone()
                without[:, index] = 0.0
                deltas[name] = probability - torch.sigmoid(model.fuse(batch, without).logits)
            attention = {}
            if full.mass is not None:
                attention = dict(zip(model.fused_modalities, full.mass.unbind(1), strict=True))
    finally:
        model.train(was_training)
    return Prediction(probability, deltas, attention)


def contributions(model: FusionModel, batch: Batch) -> dict[str, torch.Tensor]:
    """Modality -> change in probability when that modality is masked (``(B,)`` each)."""
    return predict(model, batch).contributions
