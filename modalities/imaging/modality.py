"""The imaging modality: DICOM files of any folder shape -> one normalised image per patient.

``discover`` reads headers only and rejects, with a reason from :data:`REASONS`, every file that
cannot become an image, then chooses each patient's series and, in it, the central frame the model
sees; ``read`` decodes that frame alone; ``features`` runs the MONAI pipeline on de-identified content.
Every file's header is parsed once at discovery, and the file holding the central frame once more at
read, keeping only :data:`READ_TAGS`: the least that lets discovery choose among series without holding
every header in memory, and it spares decoding the slices the model never sees.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from monai.data import get_track_meta, set_track_meta
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from modalities.base import Discovery, FileMapper, Item, Rejection, register_modality
from modalities.files import fingerprint, relative, walk_files
from modalities.imaging.grouping import central_frame, plan_series
from modalities.imaging.headers import Header, open_dataset, scan, transfer_syntax, unchecked_values
from modalities.imaging.pixels import (
    DECODE_KEYWORDS,
    PIXEL_TAGS,
    ImageSeries,
    PixelError,
    decode_frames,
    frame_attribute,
    frame_count,
    to_float,
)
from modalities.imaging.reasons import rejected, rejection
from modalities.imaging.settings import ImagingSettings
from modalities.imaging.transforms import image_pipeline

logger = logging.getLogger(__name__)

META_KEYWORDS = ("Modality", "Manufacturer", "Rows", "Columns", "PhotometricInterpretation")
_SPACING_KEYWORDS = ("PixelSpacing", "ImagerPixelSpacing", "SliceThickness")
READ_TAGS = tuple(Tag(keyword) for keyword in (*DECODE_KEYWORDS, *META_KEYWORDS, *_SPACING_KEYWORDS))
"""All that :meth:`ImagingModality.read` keeps of a file: what decoding and :func:`image_meta` use.

Data minimisation: names, dates, identifiers and free text in the header are skipped unread by the
parser, so they never reach de-identification, let alone the cache. It is also cheaper: de-identifying
a dozen elements rather than a whole header took 0.12 ms per image instead of 0.24."""


@dataclass(frozen=True)
class CentralFrame:
    """An imaging item's payload: the chosen series' files and where in them the frame the model sees lies."""

    files: tuple[Path, ...]
    """The series' files in slice order."""
    file: int
    """Which of ``files`` holds the central frame."""
    index: int
    """The frame's index within that file (0 unless the file is multi-frame)."""
    frames: int
    """Frames in the whole series."""

    @property
    def path(self) -> Path:
        return self.files[self.file]


@register_modality
class ImagingModality:
    """DICOM images; the item of a patient is the latest study's largest series."""

    name: ClassVar[str] = "imaging"
    folder: ClassVar[str] = "imaging"
    recipe_version: ClassVar[str] = "2"
    """Part of the cache key (``Site.recipe``): bump it when ``transforms.py`` changes what is cached."""

    def __init__(self, settings: ImagingSettings) -> None:
        if (settings.window_center is None) != (settings.window_width is None):
            raise ValueError("imaging window-center and window-width go together: set both (a window in "
                             "output units, e.g. HU) or neither (per-image percentile scaling)")
        self.settings = settings
        self._pipeline = image_pipeline(settings)

    def discover(self, root: Path, map_files: FileMapper = map) -> Discovery:
        """Items and rejections for every file under ``root``.

        ``found`` counts every walked entry (files, and the folders or links the walk rejected), so
        ``found`` = files in items + rejections + ``skipped["extra-series"]`` (a count of files).
        """
        site_root = root.parent
        walk = walk_files(root, modality=self.name, site_root=site_root)
        discovery = Discovery(self.name, found=len(walk.files) + len(walk.rejections),
                              rejections=list(walk.rejections))
        headers: list[Header] = []
        for outcome in map_files(partial(_scan, site_root=site_root), walk.files):
            if isinstance(outcome, Rejection):
                discovery.rejections.append(outcome)
            else:
                headers.append(outcome)
        plan = plan_series(headers)
        for header, shape in plan.inconsistent:
            discovery.rejections.append(rejection(
                "inconsistent-series", relative(header.path, site_root),
                f"a {header.shape[0]}x{header.shape[1]} slice in a series of {shape[0]}x{shape[1]} slices",
                "nothing to do unless the series is wrong: the majority shape is used"))
        if plan.extra_files:
            discovery.skipped["extra-series"] = plan.extra_files
        folder_sizes = Counter(path.parent for path in walk.files)
        for series in plan.series:
            files = [h.path for h in series]
            payload = CentralFrame(tuple(files), *central_frame(series), frames=sum(h.frames for h in series))
            where = _where(files, folder_sizes, site_root)
            try:  # the bytes the features depend on, and which frame of them
                digest = f"{fingerprint(payload.path)}:{payload.index}/{payload.frames}"
            except OSError as exc:  # removed or locked since its header was read
                discovery.rejections.append(rejection(
                    "unreadable", where, f"cannot be read ({exc.strerror or type(exc).__name__})",
                    "check the files' permissions, or whether something is still writing them"))
                continue
            discovery.items.append(Item(self.name, series[0].patient_id, where, digest, payload=payload))
        logger.info("imaging: %d files, %d patients' series chosen, %d rejected, %d in extra series",
                    discovery.found, len(discovery.items), len(discovery.rejections), plan.extra_files)
        return discovery

    def read(self, item: Item) -> ImageSeries:
        """Decode the item's central frame; raises ItemRejected when its file cannot be used (``where`` is
        the item's plus ``#file`` for a series of several files). The other slices are not decoded."""
        frame: CentralFrame = item.payload
        where = item.where if len(frame.files) == 1 else f"{item.where}#{frame.path.name}"
        try:
            with unchecked_values():
                ds = _load(frame.path)
                if frame.index >= (count := frame_count(ds)):
                    raise PixelError("inconsistent-series", f"the file has {count} frames, not the "
                                     f"{frame.index + 1} or more its header had", "the file changed after "
                                     "discovery; run the check again")
                pixels = decode_frames(ds, transfer_syntax(ds), index=frame.index)
        except PixelError as exc:
            raise rejected(exc.reason, where, exc.message, exc.hint) from None
        except Exception as exc:  # noqa: BLE001 - any bytes reach the parser; its messages may echo values
            raise rejected("unreadable", where, f"the file cannot be read in full ({type(exc).__name__})",
                           "re-export the file; if it changed since discovery, check again") from None
        for tag in PIXEL_TAGS:  # decoded into ``pixels``: keep the image once in memory
            if tag in ds:
                del ds[tag]
        pixels.flags.writeable = False
        return ImageSeries((ds,), pixels, frame.frames)

    def features(self, content: ImageSeries) -> dict[str, Any]:
        """``image``: float32 ``(1, H, W)`` in [0, 1]; ``image_meta``: non-identifying acquisition facts."""
        with _untracked_meta():
            sample = self._pipeline({"image": content.pixels})
        meta = image_meta(content.datasets[0], content.frames)
        return {"image": sample["image"], "image_meta": meta}


def image_meta(ds: Dataset, frames: int) -> dict[str, Any]:
    """Scalars that describe the acquisition and never the patient (all allowed by PS3.15's basic
    profile), for stratifying results by scanner or protocol; absent attributes are None."""
    meta: dict[str, Any] = {keyword: _scalar(ds.get(keyword)) for keyword in META_KEYWORDS}
    spacing = frame_attribute(ds, "PixelSpacing") or ds.get("ImagerPixelSpacing") or ()
    pair = tuple(to_float(v) for v in spacing)
    meta["PixelSpacing"] = pair if len(pair) == 2 and None not in pair else None
    meta["SliceThickness"] = to_float(frame_attribute(ds, "SliceThickness"))
    meta["frames"] = frames
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    meta["TransferSyntaxUID"] = str(syntax) if syntax else None
    return meta


@contextmanager
def _untracked_meta() -> Iterator[None]:
    """MONAI transforms on plain tensors rather than MetaTensors: the pipeline returns a numpy array and
    keeps no transform history, and tracking it doubles the transforms' cost on small images."""
    before = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(before)


def _scalar(value: Any) -> Any:
    if value is None or value == "":
        return None
    return int(value) if isinstance(value, int) else str(value)


def _load(path: Path) -> Dataset:
    """The file's :data:`READ_TAGS`; pydicom returns what it could parse when a file ends inside its pixel
    data."""
    with open(path, "rb") as fh:
        ds, _ = open_dataset(fh, header_only=False, tags=READ_TAGS)
    if "Rows" not in ds or not any(tag in ds for tag in PIXEL_TAGS):
        raise PixelError("unreadable", "the file ends inside its pixel data (truncated)",
                         "re-export the file from the PACS; a partial copy is the usual cause")
    return ds


def _where(paths: list[Path], folder_sizes: Counter[Path], site_root: Path) -> str:
    """The series' folder when it holds exactly this series, else its first file."""
    folder = paths[0].parent
    if len(paths) > 1 and all(p.parent == folder for p in paths) and folder_sizes[folder] == len(paths):
        return relative(folder, site_root)
    return relative(paths[0], site_root)


def _scan(path: Path, site_root: Path) -> Header | Rejection:
    return scan(path, relative(path, site_root))
