"""What the study asks of images."""

from __future__ import annotations

from pydantic import Field

from modalities.settings import Settings


class ImagingSettings(Settings):
    """Images become one normalised ``(1, H, W)`` tensor per series.

    With a window (centre/width, in the modality's output units after Rescale, e.g. HU for CT) the
    intensities are windowed to [0, 1]; without one each image is scaled by its own 1st..99th
    percentiles, which copes with MR and with scanners that differ in gain.
    """

    spatial_size: tuple[int, int] = (64, 64)
    window_center: float | None = None
    window_width: float | None = Field(default=None, gt=0)
