"""Writes a site's imaging/ folder: one CT series per imaged patient, laid out the way the site's
PACS export nests folders, plus the clutter real exports contain (a text file, a truncated file,
at some sites a structured report with no pixels).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from polyclinic.synth.dicom_datasets import Study, ct_slice, draw_study, text_report
from polyclinic.synth.phantom import draw_anatomy, slice_offsets, stored_pixels, true_hu
from polyclinic.synth.population import Patient
from polyclinic.synth.profiles import SiteProfile
from polyclinic.synth.seeding import dicom_uid, hex_name
from polyclinic.synth.truth import BadFile

NOTES = """Export notes
CT studies exported from PACS for the research cohort (DICOM Part 10 files).
Questions: research imaging office, extension 4471.
"""


@dataclass
class ImagingOutput:
    """What the writer produced, keyed by MRN, for the ground truth."""

    files: dict[str, list[str]] = field(default_factory=dict)
    accessions: dict[str, str] = field(default_factory=dict)
    bad_files: list[BadFile] = field(default_factory=list)


def _save(ds: Dataset, path: Path) -> bytes:
    """Encode ``ds`` as a Part 10 file in its transfer syntax and write it; returns the bytes."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def _study_folder(root: Path, depth: int, rng: np.random.Generator) -> Path:
    """The folder a study's series go into: ``depth - 1`` random levels (a series folder is added later)."""
    folder = root
    for _ in range(max(depth - 1, 0)):
        folder = folder / hex_name(rng)
    return folder


def _series_folder(study_folder: Path, depth: int, rng: np.random.Generator) -> Path:
    return study_folder / hex_name(rng) if depth >= 1 else study_folder


def _series(patient: Patient, profile: SiteProfile, study: Study, rng: np.random.Generator) -> list[Dataset]:
    """The patient's CT series: the phantom imaged at each slice height by the site's scanner."""
    scanner = profile.scanner
    anatomy = draw_anatomy(rng, patient.nodule_mm, scanner.slice_thickness_mm)
    return [
        ct_slice(
            patient,
            profile,
            study,
            sop_uid=dicom_uid(rng),
            number=k + 1,
            z_mm=z,
            pixels=stored_pixels(true_hu(anatomy, scanner.size, scanner.spacing_mm, z), scanner, rng),
        )
        for k, z in enumerate(slice_offsets(scanner))
    ]


def write_imaging(
    root: Path, patients: list[Patient], profile: SiteProfile, rng: np.random.Generator
) -> ImagingOutput:
    """Write ``root`` (``SITE/imaging``); paths in the output are relative to the site folder."""
    out = ImagingOutput()
    site_root = root.parent

    def rel(path: Path) -> str:
        return path.relative_to(site_root).as_posix()

    for patient in patients:
        if patient.imaging == "none":
            continue
        mrn = patient.identity.mrn
        study = draw_study(rng)
        out.accessions[mrn] = study.accession
        study_folder = _study_folder(root, profile.imaging_depth, rng)
        series_folder = _series_folder(study_folder, profile.imaging_depth, rng)
        slices = _series(patient, profile, study, rng)
        if patient.imaging == "truncated":
            path = series_folder / f"{hex_name(rng)}.dcm"
            central = slices[len(slices) // 2]
            data = _save(central, path)
            path.write_bytes(data[: len(data) - len(central.PixelData) // 2])
            out.bad_files.append(BadFile(rel(path), "imaging", "truncated", "rejected", patient=mrn))
            out.files[mrn] = []
            continue
        paths = [series_folder / f"{hex_name(rng)}.dcm" for _ in slices]
        for ds, path in zip(slices, paths, strict=True):
            _save(ds, path)
        out.files[mrn] = [rel(p) for p in paths]
        if patient.text_report:
            path = _series_folder(study_folder, profile.imaging_depth, rng) / f"{hex_name(rng)}.dcm"
            _save(text_report(patient, profile, study, rng), path)
            out.bad_files.append(BadFile(rel(path), "imaging", "no-pixels", "rejected", patient=mrn))
    notes = root / "notes.txt"
    root.mkdir(parents=True, exist_ok=True)
    notes.write_text(NOTES, encoding="utf-8")
    out.bad_files.append(BadFile(rel(notes), "imaging", "not-dicom", "rejected"))
    return out
