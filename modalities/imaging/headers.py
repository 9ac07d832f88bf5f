"""Reading one file's DICOM header to decide whether it can be used and which series it belongs to.

Discovery looks at every file of a site, so it reads headers only (``stop_before_pixels``) and
decides everything it can from them: a file that cannot become an image is rejected here, with its
reason, before any pixel is decoded.

Files without the 128-byte preamble and ``DICM`` file meta (old archives, files written by
``write_like_original``) are parsed again with ``force=True``. A forced parse accepts almost any
bytes (a README becomes one nonsense element), so its result is trusted only when it carries a
syntactically valid SOP Class UID, which no random text or binary file does by accident; anything
else is ``not-dicom``. A trusted forced parse then goes through the same checks as a regular file
(an RT plan without meta is ``no-pixels``, not ``not-dicom``). Without file meta the transfer syntax
is the encoding pydicom detected, which is right for native (uncompressed) pixel data, the only
kind such files can hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pydicom import config, dcmread
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
    RTDoseStorage,
    SegmentationStorage,
)

from modalities.base import Rejection
from modalities.imaging.pixels import frame_count
from modalities.imaging.reasons import rejection

T = TypeVar("T")

_TAGS = {keyword: Tag(keyword) for keyword in (
    "SOPClassUID", "DirectoryRecordSequence", "Rows", "Columns", "PatientID", "BurnedInAnnotation",
    "StudyInstanceUID", "SeriesInstanceUID", "StudyDate", "InstanceNumber", "ImagePositionPatient",
    "ImageOrientationPatient")}
"""The attributes discovery reads, by tag."""

NOT_PICTURES = {
    RTDoseStorage: "an RT dose grid is a computed dose distribution, not an image of the patient",
    SegmentationStorage: "a segmentation is a label map drawn on another image, not an image itself",
}
"""SOP classes that carry pixel data which is not a picture of the patient."""

_NO_DECODER_HINTS = {
    "MPEG": "video: export the frames with a DICOM toolkit (e.g. dcmtk, GDCM) before adding the series",
    "HEVC": "video: export the frames with a DICOM toolkit (e.g. dcmtk, GDCM) before adding the series",
    "SMPTE": "video or audio essence: export still frames before adding the series",
    "JPIP": "the pixel data is not in the file but referenced on a JPIP server; retrieve it from the PACS",
    "Part 2": "JPEG 2000 multi-component: transcode with GDCM (gdcmconv --raw) before adding the series",
}


@dataclass(frozen=True)
class Header:
    """What discovery needs of one usable file: whose it is, where it belongs, where it lies."""

    path: Path
    patient_id: str
    study_uid: str
    series_uid: str
    study_date: str
    instance_number: int | None
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    shape: tuple[int, int]
    frames: int


def open_dataset(fh: BinaryIO, *, header_only: bool,
                 tags: Sequence[int] | None = None) -> tuple[Dataset, bool]:
    """Parse a DICOM file, forcing only when the preamble/meta is missing; returns (dataset, forced).
    With ``tags`` only those elements are kept: pydicom skips the others' values unread."""
    try:
        return dcmread(fh, stop_before_pixels=header_only, specific_tags=tags), False
    except InvalidDicomError:
        fh.seek(0)
        return dcmread(fh, stop_before_pixels=header_only, specific_tags=tags, force=True), True


def transfer_syntax(ds: Dataset) -> UID:
    """The file meta's transfer syntax, or the native one pydicom detected when the meta lacks it."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return UID(syntax)
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def decoder_problem(tsyntax: UID) -> tuple[str, str] | None:
    """Why pixel data in ``tsyntax`` cannot be decoded here (message, hint), or None when it can."""
    label = tsyntax.name if tsyntax.is_transfer_syntax else f"unknown transfer syntax {tsyntax}"
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        hint = next((h for key, h in _NO_DECODER_HINTS.items() if key in label),
                    "transcode it to Explicit VR Little Endian (e.g. dcmtk: dcmconv +te) before adding it")
        return f"pixel data in '{label}' has no decoder in pydicom", hint
    if decoder.is_available:
        return None
    return (f"pixel data in '{label}' needs a decoder that is not installed "
            f"({'; '.join(decoder.missing_dependencies)})",
            "install one of the named packages in the client environment, or transcode the files")


@contextmanager
def unchecked_values() -> Iterator[None]:
    """pydicom's check of each value against its VR, off while a file is read.

    On reading, pydicom only warns about a value its VR does not allow, and the warning quotes it
    (``Invalid value for VR DA: '1957-03-12'``): a malformed date or identifier would reach stderr or a
    log. Values are parsed the same either way, and what discovery needs is judged by ``_classify``.
    The checks' regular expressions were also about 6% of discovery's time.
    """
    before = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode = before


@unchecked_values()
def scan(path: Path, where: str) -> Header | Rejection:
    """Classify one file from its header: a usable image's :class:`Header`, or why it is unusable."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            ds, forced = open_dataset(fh, header_only=True)
            stopped_at_pixels = fh.tell() < size
    except OSError as exc:
        return rejection("unreadable", where, f"cannot be read ({exc.strerror or type(exc).__name__})",
                         "check the file permissions for the user running the client")
    except Exception as exc:  # noqa: BLE001 - any bytes reach the parser; its messages may echo values
        if _lacks_preamble(path):
            return _not_dicom(where)
        return rejection("unreadable", where,
                         f"the DICOM header is truncated or corrupt ({type(exc).__name__})",
                         "re-export the file from the PACS; a partial copy is the usual cause")
    try:
        return _classify(ds, forced, path, where, stopped_at_pixels)
    except Exception as exc:  # noqa: BLE001 - a corrupt value fails only when it is converted
        return rejection("unreadable", where, f"a header value cannot be parsed ({type(exc).__name__})",
                         "the file is corrupt; re-export it from the PACS")


def _lacks_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] != b"DICM"
    except OSError:
        return False


def _not_dicom(where: str) -> Rejection:
    return rejection("not-dicom", where, "not a DICOM file (no preamble, and not a raw DICOM data set)",
                     "move non-DICOM files out of the imaging folder")


def _classify(ds: Dataset, forced: bool, path: Path, where: str,
              stopped_at_pixels: bool) -> Header | Rejection:
    sop = UID(str(_value(ds, "SOPClassUID") or ""))
    if forced and not sop.is_valid:
        return _not_dicom(where)
    meta = getattr(ds, "file_meta", None)
    if (meta is not None and meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage) \
            or _TAGS["DirectoryRecordSequence"] in ds:
        return rejection("dicomdir", where, "a DICOMDIR (an index of other files), not an image",
                         "nothing to do: the files it indexes are read on their own")
    tsyntax = transfer_syntax(ds)
    # stop_before_pixels leaves the file just before a pixel data tag, or at its end when there is
    # none; deflated files are inflated in memory, so for them the Image Pixel module must tell.
    has_pixels = _TAGS["Rows"] in ds and _TAGS["Columns"] in ds and (stopped_at_pixels or tsyntax.is_deflated)
    if not has_pixels:
        kind = sop.name if sop.is_valid else "a DICOM object without SOP Class UID"
        return rejection("no-pixels", where, f"{kind}: no image (pixel data or its Rows/Columns missing)",
                         "nothing to do unless this should be an image; then re-export it with its pixels")
    if sop in NOT_PICTURES:
        return rejection("unsupported-sop-class", where, f"{sop.name}: {NOT_PICTURES[sop]}",
                         "nothing to do: the study uses images of the patient only")
    patient_id = str(_value(ds, "PatientID") or "").strip()
    if not patient_id:
        return rejection("no-patient-id", where, "no PatientID, so the image cannot be linked to a patient",
                         "re-export the series with the patient's identifier (MRN) in PatientID")
    if str(_value(ds, "BurnedInAnnotation") or "").strip().upper() == "YES":
        return rejection("burned-in-annotation", where,
                         "BurnedInAnnotation is YES: text in the pixels may identify the patient",
                         "remove the burned-in text (e.g. crop or mask it) and set BurnedInAnnotation NO")
    problem = decoder_problem(tsyntax)
    if problem is not None:
        return rejection("unsupported-transfer-syntax", where, *problem)
    return Header(
        path=path,
        patient_id=patient_id,
        study_uid=str(_value(ds, "StudyInstanceUID") or ""),
        series_uid=str(_value(ds, "SeriesInstanceUID") or ""),
        study_date=str(_value(ds, "StudyDate") or ""),
        instance_number=_optional(lambda: int(_value(ds, "InstanceNumber"))),
        position=_floats(ds, "ImagePositionPatient", 3),
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        shape=(int(_value(ds, "Rows")), int(_value(ds, "Columns"))),
        frames=frame_count(ds),
    )


def _value(ds: Dataset, keyword: str) -> Any:
    """The value of a discovery attribute, or None when absent.

    Converted from the raw element with pydicom's own conversion, but not stored back into ``ds``,
    whose header discovery drops at once: the keyword lookup and bookkeeping of ``ds.get(keyword)``
    cost more than the conversion itself, and discovery reads ten values from every file of a site.
    """
    elem = ds.get_item(_TAGS[keyword])
    if isinstance(elem, RawDataElement):
        elem = convert_raw_data_element(elem, encoding=ds.original_character_set, ds=ds)
    return None if elem is None else elem.value


def _floats(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    values = _optional(lambda: tuple(float(v) for v in _value(ds, keyword)))
    return values if values is not None and len(values) == count else None


def _optional(get: Callable[[], T]) -> T | None:
    """A header value that is merely helpful (sorting): absent or malformed means None."""
    try:
        return get()
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
