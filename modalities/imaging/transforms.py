"""MONAI transforms from a decoded series to the model's ``(1, H, W)`` image in [0, 1].

Array transforms act on one image; their ``d`` twins act on named items of a sample dict, MONAI's
convention, so the imaging pipeline composes with the other modalities' dict samples. The pipeline
is built once per modality instance: building a ``Compose`` per item would cost more than the
transforms themselves on small images.

The resize and intensity steps are small numpy/torch functions rather than MONAI's ``Resized`` and
``ScaleIntensityRange[Percentiles]d``: those wrap every image in a ``MetaTensor`` with its affine
bookkeeping and take percentiles with ``torch.quantile``, which on a 64x64 slice cost ten times the
arithmetic (about 1 ms per item, as much as decoding a file). The arithmetic is the same:
``Resize(mode="area")`` is ``torch.nn.functional.interpolate(mode="area")``, and the scaling is
MONAI's ``(x - a_min) / (a_max - a_min)`` clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import Compose, MapTransform, Transform

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


class AreaResize(Transform):
    """``(C, H, W)`` -> float32 ``(C, *spatial_size)`` by area averaging (MONAI ``Resize(mode="area")``).

    Area averaging lets every source pixel count once, so downsizing a CT slice keeps small nodules'
    mean density instead of sampling past them. A non-positive size keeps that axis, as in MONAI.
    """

    def __init__(self, spatial_size: Sequence[int]) -> None:
        self.spatial_size = tuple(spatial_size)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        size = tuple(s if s > 0 else n for s, n in zip(self.spatial_size, img.shape[1:], strict=True))
        image = torch.as_tensor(np.asarray(img, dtype=np.float32))
        if tuple(image.shape[1:]) != size:
            image = torch.nn.functional.interpolate(image[None], size=size, mode="area")[0]
        return image.numpy()


class ScaleToUnit(Transform):
    """Intensities to [0, 1]: ``window`` (low, high) maps linearly and clips; without one, the image's
    own ``percentiles`` are the window. A window of zero width (a constant image) gives zeros."""

    def __init__(self, window: tuple[float, float] | None = None,
                 percentiles: tuple[float, float] = PERCENTILES) -> None:
        self.window = window
        self.percentiles = percentiles

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.window is not None:
            low, high = self.window
        else:
            low, high = (float(v) for v in np.percentile(img, self.percentiles))
        scaled = np.subtract(img, low, dtype=np.float32)
        if high > low:
            scaled /= high - low
        return np.clip(scaled, 0.0, 1.0, out=scaled)


class _ArrayOnKeysd(MapTransform):
    """Applies one array transform to the sample's ``keys``, leaving the other items as they are."""

    def __init__(self, keys: KeysCollection, transform: Callable[[np.ndarray], np.ndarray],
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class CentralSliced(_ArrayOnKeysd):
    """Dictionary version of :class:`CentralSlice`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, CentralSlice(), allow_missing_keys)


class AreaResized(_ArrayOnKeysd):
    """Dictionary version of :class:`AreaResize`."""

    def __init__(self, keys: KeysCollection, spatial_size: Sequence[int], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, AreaResize(spatial_size), allow_missing_keys)


class ScaleToUnitd(_ArrayOnKeysd):
    """Dictionary version of :class:`ScaleToUnit`."""

    def __init__(self, keys: KeysCollection, window: tuple[float, float] | None = None,
                 percentiles: tuple[float, float] = PERCENTILES, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, ScaleToUnit(window, percentiles), allow_missing_keys)


def image_pipeline(settings: ImagingSettings, keys: Sequence[str] = ("image",)) -> Compose:
    """Central slice, resize (area averaging), intensity to [0, 1]; float32 numpy throughout.

    Resizing comes first so every later step touches ``spatial_size`` values rather than the full
    matrix (a 512x512 CT slice is 64 times more work than 64x64). A window (centre/width in output
    units, e.g. HU for CT) clips to [0, 1]; without one each image is scaled between its own
    1st and 99th percentiles, which copes with MR and with scanners whose gains differ.
    """
    window = None
    if settings.window_center is not None and settings.window_width is not None:
        low = settings.window_center - settings.window_width / 2
        window = (low, low + settings.window_width)
    return Compose([
        CentralSliced(keys),
        AreaResized(keys, spatial_size=settings.spatial_size),
        ScaleToUnitd(keys, window=window),
    ])
