"""One patient's cached features -> the model's input dict: the single path training, evaluation and
``polyclinic predict`` share.

Nothing here depends on other patients. Records arrive already on a fixed, documented scale
(:func:`modalities.records.feature_names`) and gene values are normalised per sample inside the
genomics encoder, so no statistic of a site's data is computed outside DP-SGD: the released model's
(epsilon, delta) covers everything it learned from. A missing modality becomes zeros and a 0 mask;
a missing gene stays flagged in ``genome_missing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from modalities.records import feature_names

MODALITIES = ("imaging", "records", "genomics")


def input_shapes(study: Any) -> dict[str, tuple[int, ...]]:
    """Per-sample shape of each input tensor the study's model takes."""
    height, width = study.imaging.spatial_size
    return {"image": (1, height, width), "records": (len(feature_names(study.records)),),
            "genome": (len(study.genomics.gene_panel),), "genome_missing": (len(study.genomics.gene_panel),)}


def assemble_sample(study: Any, features: Mapping[str, Mapping[str, Any] | None]) -> dict[str, torch.Tensor]:
    """The model's inputs for one patient from ``features``: modality -> its cached feature dict
    (``FeatureCache.load``), or absent/None when the patient has no such item."""
    unknown = set(features) - set(MODALITIES)
    if unknown:
        raise ValueError(f"assemble_sample: unknown modalities {sorted(unknown)}; expected some of "
                         f"{MODALITIES}")
    shapes = input_shapes(study)
    imaging, records, genomics = (features.get(m) for m in MODALITIES)
    return {
        "image": _tensor(imaging, "image", shapes, 0.0),
        "imaging_mask": torch.tensor(float(imaging is not None)),
        "records": _tensor(records, "records", shapes, 0.0),
        "records_mask": torch.tensor(float(records is not None)),
        "genome": _tensor(genomics, "genome", shapes, 0.0),
        "genome_missing": _tensor(genomics, "genome_missing", shapes, 1.0),
        "genomics_mask": torch.tensor(float(genomics is not None)),
    }


def _tensor(features: Mapping[str, Any] | None, key: str, shapes: dict[str, tuple[int, ...]],
            absent: float) -> torch.Tensor:
    """``features[key]`` as float32 in the study's shape; all ``absent`` when the modality is missing."""
    if features is None:
        return torch.full(shapes[key], absent)
    if key not in features:
        raise ValueError(f"cached features have no {key!r} (keys: {sorted(features)}); rebuild the cache "
                         "with `polyclinic site prepare SITE`")
    value = torch.as_tensor(features[key]).float()
    if tuple(value.shape) != shapes[key]:
        raise ValueError(f"cached {key!r} has shape {tuple(value.shape)}, the study expects {shapes[key]}; "
                         "the cache was built for another study: rebuild it with "
                         "`polyclinic site prepare SITE`")
    return value
