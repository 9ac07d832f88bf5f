"""Every DICOM (and non-DICOM) file pydicom ships goes through discover, read, de-identify and features.

Each file must end as a usable image or as a rejection whose code is documented in REASONS: never an
exception, never a hang. ``get_testdata_files()`` would also try to download the pydicom-data extras;
pydicom's own network-outage switch keeps it to the files installed with pydicom.
"""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom.data.download
import pytest
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.dataset import Dataset

import privacy.dicom_deid  # noqa: F401  (registers the imaging de-identifier)
from modalities.base import Discovery, ItemRejected
from modalities.imaging import REASONS, ImageSeries, ImagingModality
from modalities.imaging.headers import open_dataset, transfer_syntax
from modalities.imaging.modality import CentralFrame, image_meta
from modalities.imaging.pixels import decode_frames
from modalities.imaging.settings import ImagingSettings
from privacy.deidentify import DeidContext, deidentify
from privacy.pseudonym import Pseudonymiser


def _bundled_files() -> list[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pydicom.data.download, "_SIMULATE_NETWORK_OUTAGE", True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "One or more download failures occurred"
            names = get_testdata_files() + get_charset_files()
    return sorted(Path(n) for n in names if Path(n).is_file())


BUNDLED = _bundled_files()
DATA_ROOT = Path(pydicom.data.__file__).parent

# What a data steward should see for the files that exercise each path (the rest must merely be
# usable or rejected with a documented code).
EXPECTED = {
    "CT_small.dcm": "ok", "MR_small.dcm": "ok", "MR_small_RLE.dcm": "ok", "693_J2KI.dcm": "ok",
    "MR_small_jpeg_ls_lossless.dcm": "ok", "SC_rgb_jpeg_dcmtk.dcm": "ok", "examples_ybr_color.dcm": "ok",
    "examples_palette.dcm": "ok", "SC_rgb_rle_2frame.dcm": "ok", "chrX1.dcm": "ok",
    "MR_truncated.dcm": "imaging.unreadable",
    "README.txt": "imaging.not-dicom", "crayons.icc": "imaging.not-dicom", "zipMR.gz": "imaging.not-dicom",
    "no_meta.dcm": "imaging.not-dicom",  # a stray leading byte: not parseable as a raw data set
    "DICOMDIR": "imaging.dicomdir", "DICOMDIR-implicit": "imaging.dicomdir",
    "rtplan.dcm": "imaging.no-pixels", "rtstruct.dcm": "imaging.no-pixels",
    "test-SR.dcm": "imaging.no-pixels", "waveform_ecg.dcm": "imaging.no-pixels",
    "ExplVR_BigEndNoMeta.dcm": "imaging.no-pixels",
    "IM000000": "imaging.no-pixels",  # an image header whose pixel data is missing
    "rtdose.dcm": "imaging.unsupported-sop-class", "liver_1frame.dcm": "imaging.unsupported-sop-class",
    "GDCMJ2K_TextGBR.dcm": "imaging.no-patient-id",
    "JPEG2000-embedded-sequence-delimiter.dcm": "imaging.decode-failed",
}


def _outcomes(modality: ImagingModality, discovery: Discovery, ctx: DeidContext) -> list[str]:
    """One entry per rejection and per item: its code, or "ok" for a usable image."""
    outcomes = [r.code for r in discovery.rejections]
    for item in discovery.items:
        try:
            clean = deidentify("imaging", modality.read(item), ctx)
            assert isinstance(clean, ImageSeries)
            features = modality.features(clean)
        except ItemRejected as exc:
            outcomes.append(exc.rejection.code)
            continue
        image = features["image"]
        assert image.shape == (1, 64, 64) and image.dtype == np.float32
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
        outcomes.append("ok")
    return outcomes


@pytest.fixture(scope="module")
def modality() -> ImagingModality:
    return ImagingModality(ImagingSettings())


@pytest.fixture(scope="module")
def ctx() -> DeidContext:
    return DeidContext(Pseudonymiser(b"bundled-files-test-secret"), "p-000000000000000000000001",
                       dt.date(2020, 1, 1))


def test_the_bundled_files_are_all_here() -> None:
    names = {p.name for p in BUNDLED}
    assert len(BUNDLED) > 150 and set(EXPECTED) <= names


@pytest.mark.timeout(20)
@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.relative_to(DATA_ROOT).as_posix())
def test_each_bundled_file_is_usable_or_rejected_with_a_documented_code(
        path: Path, modality: ImagingModality, ctx: DeidContext, tmp_path: Path) -> None:
    (tmp_path / "imaging").mkdir()
    shutil.copy(path, tmp_path / "imaging" / path.name)
    outcomes = _outcomes(modality, modality.discover(tmp_path / "imaging"), ctx)
    assert len(outcomes) == 1, outcomes
    assert outcomes[0] == "ok" or outcomes[0] in REASONS
    if path.name in EXPECTED:
        assert outcomes[0] == EXPECTED[path.name]


@pytest.mark.timeout(60)
def test_all_bundled_files_in_one_site_are_accounted_for(
        modality: ImagingModality, ctx: DeidContext, tmp_path: Path) -> None:
    imaging = tmp_path / "imaging"
    for path in BUNDLED:
        target = imaging / path.relative_to(DATA_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    discovery = modality.discover(imaging)
    used = sum(len(item.payload.files) for item in discovery.items)
    assert discovery.found == len(BUNDLED)
    assert used + len(discovery.rejections) + discovery.skipped.get("extra-series", 0) == discovery.found
    assert len({item.patient_id for item in discovery.items}) == len(discovery.items)
    outcomes = _outcomes(modality, discovery, ctx)
    assert set(outcomes) - {"ok"} <= set(REASONS)
    assert outcomes.count("ok") >= 15  # one item per patient: many bundled files share a PatientID


def _decode_whole_file(frame: CentralFrame) -> tuple[Dataset, np.ndarray]:
    """The reference for ``read``: every attribute of the file parsed, the same frame decoded."""
    with open(frame.path, "rb") as fh:
        full, _ = open_dataset(fh, header_only=False)
    return full, decode_frames(full, transfer_syntax(full), index=frame.index)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.relative_to(DATA_ROOT).as_posix())
def test_reading_only_the_attributes_used_changes_no_pixel_and_no_fact(
        path: Path, modality: ImagingModality, tmp_path: Path) -> None:
    """``read`` keeps only ``READ_TAGS`` of a file; the image and its acquisition facts must be exactly
    those of the whole file, and a file it cannot use must be one the whole file cannot make either."""
    (tmp_path / "imaging").mkdir()
    shutil.copy(path, tmp_path / "imaging" / path.name)
    for item in modality.discover(tmp_path / "imaging").items:
        try:
            series = modality.read(item)
        except ItemRejected:
            with pytest.raises(Exception):  # noqa: B017  (any failure: read may not add one)
                _decode_whole_file(item.payload)
            continue
        full, pixels = _decode_whole_file(item.payload)
        np.testing.assert_array_equal(series.pixels, pixels)
        assert image_meta(series.datasets[0], series.frames) == image_meta(full, series.frames)
