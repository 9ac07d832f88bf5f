"""MONAI transforms from a decoded series to the model's ``(1, H, W)`` image in [0, 1].

Array transforms act on one image; their ``d`` twins act on named items of a sample dict, MONAI's
convention, so the imaging pipeline composes with the other modalities' dict samples. The pipeline
is built once per modality instance: building a ``Compose`` per item would cost more than the
transforms themselves on small images.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    EnsureTyped,
    MapTransform,
    Resized,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    Transform,
)

from modalities.imaging.settings import ImagingSettings

PERCENTILES = (1.0, 99.0)
"""Without a window, each image is scaled between these percentiles of its own resized central slice."""


class CentralSlice(Transform):
    """``(frames, H, W)`` -> ``(1, H, W)``: the middle frame of a slice-sorted series.

    The middle of a sorted stack is the most central anatomy of the scanned region, and one frame keeps
    2D models (and DP-SGD's per-sample cost) small; for an even count it is the upper of the two.
    """

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if img.ndim != 3 or img.shape[0] == 0:
            raise ValueError(f"CentralSlice expects a (frames, H, W) array with frames >= 1, got {img.shape}")
        middle = img.shape[0] // 2
        return np.array(img[middle:middle + 1])  # a copy: the series' stack is read-only


class CentralSliced(MapTransform):
    """Dictionary version of :class:`CentralSlice`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slicer = CentralSlice()

    def __call__(self, data: Mapping[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.slicer(d[key])
        return d


def image_pipeline(settings: ImagingSettings, keys: Sequence[str] = ("image",)) -> Compose:
    """Central slice, resize (area averaging), intensity to [0, 1], float32 numpy.

    Resizing comes first so every later step touches ``spatial_size`` values rather than the full
    matrix (a 512x512 CT slice is 64 times more work than 64x64). A window (centre/width in output
    units, e.g. HU for CT) clips to [0, 1]; without one each image is scaled between its own
    1st and 99th percentiles, which copes with MR and with scanners whose gains differ.
    """
    if settings.window_center is not None and settings.window_width is not None:
        low = settings.window_center - settings.window_width / 2
        scale: MapTransform = ScaleIntensityRanged(keys, a_min=low, a_max=low + settings.window_width,
                                                   b_min=0.0, b_max=1.0, clip=True)
    else:
        scale = ScaleIntensityRangePercentilesd(keys, lower=PERCENTILES[0], upper=PERCENTILES[1],
                                                b_min=0.0, b_max=1.0, clip=True)
    return Compose([
        CentralSliced(keys),
        Resized(keys, spatial_size=settings.spatial_size, mode="area"),
        scale,
        EnsureTyped(keys, data_type="numpy", dtype=np.float32, track_meta=False),
    ])
