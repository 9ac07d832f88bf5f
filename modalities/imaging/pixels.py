"""Decoded DICOM pixels in one convention: float32 ``(frames, rows, cols)``, higher is brighter.

Scanners store the same anatomy in many ways (signed or unsigned, rescaled, inverted MONOCHROME1,
palette or YCbCr colour, one frame per file or hundreds per file). The model must see one kind of
array, so every decoded dataset is brought to the modality's output units (Modality LUT or Rescale
Slope/Intercept, e.g. Hounsfield units for CT), MONOCHROME1 is mirrored within its output range so
that higher always means brighter, and colour becomes luminance (ITU-R BT.601 luma, the Y of YBR_FULL).

Decoding goes through pydicom's decoders (``pydicom.pixels.get_decoder``); what decodes here was
verified on pydicom's bundled files (tests/modalities/imaging/test_imaging_pixels.py):

* pydicom itself: Implicit/Explicit VR Little Endian, Explicit VR Big Endian, Deflated Explicit VR
  Little Endian, RLE Lossless;
* pylibjpeg-libjpeg: JPEG Baseline, JPEG Extended (12-bit), JPEG Lossless SV1, JPEG-LS Lossless and
  Near-Lossless;
* pylibjpeg-openjpeg: JPEG 2000 and JPEG 2000 Lossless.

Registered but not verified (no sample file at hand): JPEG Lossless process 14 (libjpeg) and HTJ2K
(openjpeg). Video, JPIP and JPEG 2000 Part 2 syntaxes have no pydicom decoder: such files are
rejected at discovery as ``imaging.unsupported-transfer-syntax``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
"""PixelData, FloatPixelData, DoubleFloatPixelData (by tag: a keyword is looked up on every use)."""

_PALETTE = tuple(f"{segmented}{colour}PaletteColorLookupTable{part}"
                 for colour in ("Red", "Green", "Blue", "Alpha")
                 for segmented, part in (("", "Descriptor"), ("", "Data"), ("Segmented", "Data")))
DECODE_KEYWORDS = (
    # the Image Pixel module: all that pydicom's decoders read of a data set
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "Rows",
    "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
    # stored values to output units, higher = brighter: Modality LUT or rescale, palette colour
    "ModalityLUTSequence", "RescaleSlope", "RescaleIntercept", "RescaleType", "PixelPresentation", *_PALETTE,
    # where enhanced multi-frame IODs keep rescale and spacing, per frame or shared
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
)
"""The attributes :func:`decode_frames` reads."""


@dataclass(frozen=True, eq=False)
class ImageSeries:
    """One patient's chosen series as the model uses it: its central frame, decoded.

    The model sees one frame per patient, the middle of the slice-sorted series
    (:func:`modalities.imaging.grouping.central_frame`), so only the file holding it is decoded: for a
    300-slice CT that is one decode instead of 300. ``datasets`` are the headers of the files read
    (their pixel data elements dropped once decoded: ``pixels`` holds the image, once in memory, and
    de-identification then copies headers only); ``pixels`` is float32 ``(1, rows, cols)`` and
    read-only, so a de-identified copy can share it safely; ``frames`` counts the whole series' frames.
    """

    datasets: tuple[Dataset, ...]
    pixels: np.ndarray
    frames: int


class PixelError(Exception):
    """Pixel data that cannot be turned into an image; ``reason`` is an imaging rejection reason."""

    def __init__(self, reason: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.reason, self.message, self.hint = reason, message, hint


def frame_count(ds: Dataset) -> int:
    """Frames in the dataset's pixel data (NumberOfFrames; absent, empty or 0 means one)."""
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def decode_frames(ds: Dataset, tsyntax: UID, index: int | None = None) -> np.ndarray:
    """The dataset's frames as float32 ``(frames, rows, cols)`` in output units, higher = brighter;
    with ``index``, that frame alone as ``(1, rows, cols)`` (pydicom then decodes only that frame)."""
    try:
        arr, info = get_decoder(tsyntax).as_array(ds, index=index)
    except Exception as exc:  # codec errors come from C libraries in many types; messages may echo input
        if _truncated(ds, tsyntax):  # pydicom refuses short native pixel data; say why, not just that
            raise PixelError("unreadable", "the pixel data is shorter than its header says (truncated file)",
                             "re-export the file from the PACS; a partial copy is the usual cause") from exc
        raise PixelError("decode-failed", f"{tsyntax.name} pixel data could not be decoded "
                         f"({type(exc).__name__})",
                         "the compressed stream is likely corrupt; re-export it") from exc
    photometric = str(info.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    samples = int(info.get("samples_per_pixel", ds.get("SamplesPerPixel", 1)))
    if photometric == "PALETTE COLOR":
        arr, samples = apply_color_lut(arr, ds), 3
    if arr.ndim == (2 if samples == 1 else 3):
        arr = arr[np.newaxis]
    out = np.empty(arr.shape[:3], dtype=np.float32)
    first = index or 0
    if samples == 3:
        np.matmul(arr, _LUMA, out=out, casting="unsafe")
    else:
        _modality_units(arr, ds, out, first)
        if photometric == "MONOCHROME1":
            low, high = _output_range(arr, ds, first)
            np.subtract(low + high, out, out=out)
    if arr.dtype.kind == "f" and not np.isfinite(out).all():
        raise PixelError("decode-failed", "the float pixel data holds NaN or infinite values",
                         "re-export the image from the system that computed it")
    return out


def _truncated(ds: Dataset, tsyntax: UID) -> bool:
    """Native pixel data shorter than its Image Pixel attributes say (checked once decoding failed)."""
    if tsyntax.is_encapsulated or "PixelData" not in ds:
        return False
    try:
        return len(ds.PixelData) < get_expected_length(ds)
    except Exception:  # noqa: BLE001 - attributes too broken to compute a length: decode-failed says enough
        return False


def _modality_units(arr: np.ndarray, ds: Dataset, out: np.ndarray, first: int) -> None:
    """Modality LUT or Rescale Slope/Intercept into ``out``, per frame when an enhanced IOD varies them
    (``arr`` holds the frames from index ``first`` on).

    pydicom's ``apply_rescale`` reads top-level attributes only and computes in float64; enhanced
    multi-frame images keep them in functional groups, and float32 holds 16-bit values exactly.
    """
    if ds.get("ModalityLUTSequence"):
        out[...] = apply_modality_lut(arr, ds)
        return
    slopes, intercepts = _rescale(ds, arr.shape[0], first)
    if np.any(slopes != 1):
        np.multiply(arr, slopes, out=out, casting="unsafe")
    else:
        np.copyto(out, arr, casting="unsafe")
    if np.any(intercepts != 0):
        out += intercepts


def _rescale(ds: Dataset, count: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """(slope, intercept) of frames ``first`` to ``first + count - 1``, shaped ``(count, 1, 1)``; a classic
    image has one pair for all."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds or "PerFrameFunctionalGroupsSequence" not in ds:
        count = 1
    frames = range(first, first + count)
    pairs = [(_or(to_float(frame_attribute(ds, "RescaleSlope", i)), 1.0),
              _or(to_float(frame_attribute(ds, "RescaleIntercept", i)), 0.0)) for i in frames]
    values = np.array(pairs, dtype=np.float32).reshape(count, 2, 1, 1)
    return values[:, 0], values[:, 1]


def _output_range(arr: np.ndarray, ds: Dataset, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest representable output values (per frame), the mirror for MONOCHROME1."""
    if arr.dtype.kind == "f":
        return np.array(arr.min(), np.float32), np.array(arr.max(), np.float32)
    if ds.get("ModalityLUTSequence"):
        entries, lowest = ds.ModalityLUTSequence[0].LUTDescriptor[:2]
        mapped = apply_modality_lut(np.arange(lowest, lowest + (entries or 1 << 16)), ds)
        return np.array(mapped.min(), np.float32), np.array(mapped.max(), np.float32)
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    stored = np.array([-(1 << (bits - 1)), (1 << (bits - 1)) - 1] if signed else [0, (1 << bits) - 1])
    slopes, intercepts = _rescale(ds, arr.shape[0], first)
    ends = stored.astype(np.float32) * slopes + intercepts
    return ends.min(axis=-1, keepdims=True), ends.max(axis=-1, keepdims=True)


def frame_attribute(ds: Dataset, keyword: str, frame: int = 0) -> Any:
    """An attribute wherever the IOD keeps it: top level (classic images), else the frame's
    per-frame functional groups, else the shared functional groups (enhanced multi-frame)."""
    if keyword in ds:
        return ds[keyword].value
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame):
        groups.append(per_frame[frame])
    if ds.get("SharedFunctionalGroupsSequence"):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    for group in groups:
        for macro in group:
            if macro.VR == "SQ" and macro.value and keyword in macro.value[0]:
                return macro.value[0][keyword].value
    return None


def to_float(value: Any) -> float | None:
    """A decimal string as float; absent or malformed (scanners do write "5.0mm") is None."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
