"""DICOM imaging: importing this package registers the ``imaging`` modality."""

from modalities.imaging.modality import ImagingModality, image_meta
from modalities.imaging.pixels import ImageSeries
from modalities.imaging.reasons import REASONS

__all__ = ["REASONS", "ImageSeries", "ImagingModality", "image_meta"]
