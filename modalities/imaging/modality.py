"""The imaging modality: DICOM files of any folder shape -> one normalised image per patient.

``discover`` reads headers only and rejects, with a reason from :data:`REASONS`, every file that
cannot become an image; ``read`` decodes the chosen series once per file; ``features`` runs the MONAI
pipeline on de-identified content. Each file is parsed twice in all (header at discovery, whole file
at read), the least that lets discovery choose among series without holding every header in memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydicom.dataset import Dataset

from modalities.base import Discovery, Item, Rejection, register_modality
from modalities.files import fingerprint, relative, walk_files
from modalities.imaging.grouping import plan_series
from modalities.imaging.headers import Header, open_dataset, scan, transfer_syntax
from modalities.imaging.pixels import (
    PIXEL_KEYWORDS,
    ImageSeries,
    PixelError,
    decode_frames,
    frame_attribute,
    frame_count,
)
from modalities.imaging.reasons import rejected, rejection
from modalities.imaging.settings import ImagingSettings
from modalities.imaging.transforms import image_pipeline

logger = logging.getLogger(__name__)

META_KEYWORDS = ("Modality", "Manufacturer", "Rows", "Columns", "PhotometricInterpretation")


@register_modality
class ImagingModality:
    """DICOM images; the item of a patient is the latest study's largest series."""

    name: ClassVar[str] = "imaging"
    folder: ClassVar[str] = "imaging"

    def __init__(self, settings: ImagingSettings) -> None:
        if (settings.window_center is None) != (settings.window_width is None):
            raise ValueError("imaging window-center and window-width go together: set both (a window in "
                             "output units, e.g. HU) or neither (per-image percentile scaling)")
        self.settings = settings
        self._pipeline = image_pipeline(settings)

    def discover(self, root: Path) -> Discovery:
        """Every file under ``root``: ``found`` = files in items + rejections + ``skipped`` files."""
        site_root = root.parent
        walk = walk_files(root, modality=self.name, site_root=site_root)
        discovery = Discovery(self.name, found=len(walk.files) + len(walk.rejections),
                              rejections=list(walk.rejections))
        headers: list[Header] = []
        for path in walk.files:
            outcome = scan(path, relative(path, site_root))
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
            paths = [header.path for header in series]
            discovery.items.append(Item(self.name, series[0].patient_id, _where(paths, folder_sizes, site_root),
                                        fingerprint(*paths), payload=tuple(paths)))
        logger.info("imaging: %d files, %d patients' series chosen, %d rejected, %d in extra series",
                    discovery.found, len(discovery.items), len(discovery.rejections), plan.extra_files)
        return discovery

    def read(self, item: Item) -> ImageSeries:
        """Decode the item's files once each into one float32 stack; raises ItemRejected when a file
        cannot be used. The stack is allocated once, sized on the first file (every file of a series
        normally has as many frames), and only grown when a file has more."""
        paths: tuple[Path, ...] = item.payload
        datasets: list[Dataset] = []
        stack: np.ndarray | None = None
        filled = 0
        for path in paths:
            where = item.where if len(paths) == 1 else f"{item.where}#{path.name}"
            try:
                with open(path, "rb") as fh:
                    ds, _ = open_dataset(fh, header_only=False)
                count, shape = frame_count(ds), (int(ds.Rows), int(ds.Columns))
                if stack is None:
                    stack = np.empty((count * len(paths), *shape), dtype=np.float32)
                elif filled + count > len(stack):
                    stack = np.concatenate([stack[:filled], np.empty((count, *stack.shape[1:]), np.float32)])
                decode_frames(ds, transfer_syntax(ds), out=stack[filled:filled + count])
            except PixelError as exc:
                raise rejected(exc.reason, where, exc.message, exc.hint) from None
            except Exception as exc:  # noqa: BLE001 - any bytes reach the parser; its messages may echo values
                raise rejected("unreadable", where, f"the file can no longer be read ({type(exc).__name__})",
                               "it changed or broke after discovery; run the check again") from None
            filled += count
            for keyword in PIXEL_KEYWORDS:
                if keyword in ds:
                    del ds[keyword]
            datasets.append(ds)
        assert stack is not None  # discover never yields an item without files
        pixels = stack[:filled]
        pixels.flags.writeable = False
        return ImageSeries(tuple(datasets), pixels)

    def features(self, content: ImageSeries) -> dict[str, Any]:
        """``image``: float32 ``(1, H, W)`` in [0, 1]; ``image_meta``: non-identifying acquisition facts."""
        sample = self._pipeline({"image": content.pixels})
        return {"image": sample["image"], "image_meta": image_meta(content.datasets[0], content.pixels.shape[0])}


def image_meta(ds: Dataset, frames: int) -> dict[str, Any]:
    """Scalars that describe the acquisition and never the patient (all allowed by PS3.15's basic
    profile), for stratifying results by scanner or protocol; absent attributes are None."""
    meta: dict[str, Any] = {keyword: _scalar(ds.get(keyword)) for keyword in META_KEYWORDS}
    spacing = frame_attribute(ds, "PixelSpacing") or ds.get("ImagerPixelSpacing")
    meta["PixelSpacing"] = tuple(float(v) for v in spacing) if spacing else None
    thickness = frame_attribute(ds, "SliceThickness")
    meta["SliceThickness"] = float(thickness) if thickness not in (None, "") else None
    meta["frames"] = frames
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    meta["TransferSyntaxUID"] = str(syntax) if syntax else None
    return meta


def _scalar(value: Any) -> Any:
    if value is None or value == "":
        return None
    return int(value) if isinstance(value, int) else str(value)


def _where(paths: list[Path], folder_sizes: Counter[Path], site_root: Path) -> str:
    """The series' folder when it holds exactly this series, else its first file."""
    folder = paths[0].parent
    if len(paths) > 1 and all(p.parent == folder for p in paths) and folder_sizes[folder] == len(paths):
        return relative(folder, site_root)
    return relative(paths[0], site_root)
