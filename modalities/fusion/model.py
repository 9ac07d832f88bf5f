"""The fusion model: one encoder per modality, a fusion variant, masks and modality dropout.

Input is one batch dict as the cohort dataset produces it (``image``/``imaging_mask``,
``records``/``records_mask``, ``genome``/``genome_missing``/``genomics_mask``); output is one logit
per sample. Inputs under a 0 mask are replaced by zeros before any layer sees them and the fusions
mask those modalities' tokens, so whatever a missing modality's tensor holds (zeros, noise, NaN)
cannot change a prediction. Every trainable layer is one Opacus computes per-sample gradients for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import nn

from modalities.fusion.dropout import drop_modalities
from modalities.fusion.registry import FusionOutput, create_fusion
from modalities.fusion.settings import FusionSettings
from modalities.genomics.encoder import GenomicsEncoder
from modalities.genomics.settings import GenomicsSettings
from modalities.imaging.encoder import ImagingEncoder
from modalities.imaging.settings import ImagingSettings
from modalities.records import feature_names
from modalities.records.encoder import RecordsEncoder, checked_records
from modalities.records.settings import RecordsSettings

Batch = Mapping[str, torch.Tensor]


class StudyLike(Protocol):
    """What the model needs of a study (``polyclinic.study.Study``; modalities never import it)."""

    imaging: ImagingSettings
    records: RecordsSettings
    genomics: GenomicsSettings


def mask_key(modality: str) -> str:
    return f"{modality}_mask"


class FusionModel(nn.Module):
    """``forward(batch) -> logits (B,)``; modality dropout only in training mode."""

    def __init__(self, encoders: dict[str, nn.Module], settings: FusionSettings,
                 linear_terms: dict[str, nn.Linear] | None = None) -> None:
        """``linear_terms``: modalities that bypass the fusion, each a ``Linear(width, 1)`` of its own input
        vector (the batch key is the modality's name) whose output is added to the fused logit; only the
        records vector, so far (:func:`create_model`)."""
        super().__init__()
        self.settings = settings
        self.linear_terms = nn.ModuleDict(linear_terms or {})
        self.modalities = (*encoders, *self.linear_terms)
        self.fused_modalities = tuple(encoders)
        """The modalities the fusion sees, in the order of its tokens and its attention ``mass``."""
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = create_fusion(settings.fusion, settings, tuple(e.tokens for e in encoders.values()))
        self.generator = torch.Generator().manual_seed(settings.seed)
        """Modality dropout's own RNG: a seeded run repeats exactly; the global RNG is never touched."""

    def masks(self, batch: Batch) -> torch.Tensor:
        """``(B, M)`` presence masks in ``self.modalities`` order."""
        return torch.stack([_get(batch, mask_key(m)).to(torch.float32) for m in self.modalities], dim=1)

    def drop(self, masks: torch.Tensor) -> torch.Tensor:
        """``masks`` after modality dropout, drawn from the model's own generator.

        ``forward`` calls it in training mode. A trainer that computes per-sample gradients with
        ``torch.func.vmap`` over ``fuse`` calls it once per batch outside the vmap (random draws
        inside a vmap would need vmap's own randomness rules).
        """
        return drop_modalities(masks, self.settings.modality_dropout, self.generator)

    def forward(self, batch: Batch) -> torch.Tensor:
        masks = self.masks(batch)
        if self.training:
            masks = self.drop(masks)
        return self.fuse(batch, masks).logits

    def fuse(self, batch: Batch, masks: torch.Tensor) -> FusionOutput:
        """The fusion's output under the given masks (no dropout: the caller chose the masks)."""
        tokens = []
        for index, encoder in enumerate(self.encoders.values()):
            present = masks[:, index] > 0.5
            inputs = [_zero_where_absent(_get(batch, key), present) for key in encoder.inputs]
            tokens.append(encoder(*inputs))
        fused = self.fusion(tokens, masks[:, :len(tokens)])
        logits = fused.logits
        for index, (name, term) in enumerate(self.linear_terms.items(), start=len(tokens)):
            present = masks[:, index] > 0.5
            value = term(_zero_where_absent(checked_records(_get(batch, name), term.in_features),
                                            present)).squeeze(-1)
            logits = logits + torch.where(present, value, torch.zeros((), dtype=value.dtype))
        return FusionOutput(logits, fused.mass)


def _get(batch: Batch, key: str) -> torch.Tensor:
    try:
        return batch[key]
    except KeyError:
        raise KeyError(f"batch has no {key!r}; a batch needs image, records, genome, genome_missing and "
                       "imaging_mask, records_mask, genomics_mask (see client.cohort_dataset)") from None


def _zero_where_absent(tensor: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (tensor.dim() - 1)
    return torch.where(present.view(shape), tensor, torch.zeros((), dtype=tensor.dtype, device=tensor.device))


def create_model(study: StudyLike, settings: FusionSettings | None = None) -> FusionModel:
    """The study's fusion model; ``settings`` default to the study's ``fusion`` section, if any."""
    settings = settings or getattr(study, "fusion", None) or FusionSettings()
    imaging = ImagingEncoder(study.imaging.spatial_size, settings.d_model, settings.image_grid)
    if settings.freeze_image_features:
        imaging.features.requires_grad_(False)
    genomics = GenomicsEncoder(len(study.genomics.gene_panel), settings.d_model, settings.pathway_size,
                               reference=study.genomics.reference_profile())
    records_width = len(feature_names(study.records))
    if settings.linear_records:
        return FusionModel({"imaging": imaging, "genomics": genomics}, settings,
                           {"records": nn.Linear(records_width, 1)})
    records = RecordsEncoder(records_width, settings.d_model, settings.records_tokens)
    return FusionModel({"imaging": imaging, "records": records, "genomics": genomics}, settings)


def count_trainable_parameters(model: nn.Module) -> int:
    """How many weights training updates: what DP-SGD clips and noises, and what a site sends."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
