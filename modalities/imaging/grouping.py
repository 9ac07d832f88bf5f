"""From usable files to one series per patient, its slices in anatomical order.

A patient often has several series (scouts, reformats, follow-up studies); the model takes one image
per patient, so the choice must be predictable and explainable: the latest study, then the series
with the most slices (the diagnostic acquisition rather than a localiser), then the lowest path so
reruns agree. Slices of one series with a different matrix size cannot be stacked; the majority
shape wins and the rest are reported rather than silently resized.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from modalities.imaging.headers import Header


@dataclass
class SeriesPlan:
    """The chosen series (one per patient, slices sorted) and what was set aside."""

    series: list[list[Header]] = field(default_factory=list)
    inconsistent: list[tuple[Header, tuple[int, int]]] = field(default_factory=list)
    """Slices whose shape differs from their series' majority shape (given beside them)."""
    extra_files: int = 0
    """Files in series not chosen because the patient has a preferred one."""


def plan_series(headers: Iterable[Header]) -> SeriesPlan:
    """Group by (PatientID, StudyInstanceUID, SeriesInstanceUID) and choose one series per patient.

    A file without SeriesInstanceUID is a series of its own, since nothing says what it belongs to.
    """
    groups: dict[tuple[str, str, str], list[Header]] = defaultdict(list)
    for header in headers:
        groups[(header.patient_id, header.study_uid, header.series_uid or str(header.path))].append(header)
    plan = SeriesPlan()
    candidates: dict[str, list[list[Header]]] = defaultdict(list)
    for files in groups.values():
        kept, odd = split_majority_shape(files)
        plan.inconsistent.extend((header, kept[0].shape) for header in odd)
        candidates[kept[0].patient_id].append(kept)
    for patient in sorted(candidates):
        by_path = sorted(candidates[patient], key=lambda files: min(str(h.path) for h in files))
        ranked = sorted(by_path, key=lambda files: (max(h.study_date for h in files), len(files)),
                        reverse=True)  # a stable sort: equal dates and sizes keep the path order
        plan.series.append(sort_slices(ranked[0]))
        plan.extra_files += sum(len(files) for files in ranked[1:])
    return plan


def split_majority_shape(files: list[Header]) -> tuple[list[Header], list[Header]]:
    """(files with the most common (rows, columns), the others); ties go to the larger shape."""
    counts = Counter(header.shape for header in files)
    shape = max(counts, key=lambda s: (counts[s], s))
    return [h for h in files if h.shape == shape], [h for h in files if h.shape != shape]


def sort_slices(files: list[Header]) -> list[Header]:
    """Order by position along the slice normal when every slice has one, else by InstanceNumber.

    The normal is the cross product of the first slice's row and column direction cosines, the
    ordering DICOM viewers use; InstanceNumber is only the acquisition order, which need not be spatial.
    """
    orientation = files[0].orientation
    if orientation is not None and all(h.position is not None for h in files):
        rx, ry, rz, cx, cy, cz = orientation
        normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
        return sorted(files, key=lambda h: (sum(p * n for p, n in zip(h.position or (), normal, strict=True)),
                                            _instance_key(h), str(h.path)))
    return sorted(files, key=lambda h: (_instance_key(h), str(h.path)))


def central_frame(series: list[Header]) -> tuple[int, int]:
    """Which file of a slice-sorted series holds its middle frame, and the frame's index in that file.

    The model sees this one frame per patient: the middle of a sorted stack is the most central anatomy
    of the scanned region, and one frame keeps 2D models (and DP-SGD's per-sample cost) small. For an
    even count it is the upper of the two middle frames.
    """
    middle = sum(header.frames for header in series) // 2
    for position, header in enumerate(series):
        if middle < header.frames:
            return position, middle
        middle -= header.frames
    raise ValueError("central_frame needs a series of at least one file")


def _instance_key(header: Header) -> tuple[bool, int]:
    return header.instance_number is None, header.instance_number or 0
