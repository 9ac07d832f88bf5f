"""Decoded pixels in output units: rescale, MONOCHROME1, multi-frame, colour; what each decoder reads;
and which frame of a series is decoded (its central one, alone)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from modalities.base import ItemRejected
from modalities.imaging import ImageSeries, ImagingModality
from modalities.imaging.modality import READ_TAGS
from modalities.imaging.pixels import decode_frames
from modalities.imaging.settings import ImagingSettings

LUMA = np.array([0.299, 0.587, 0.114])


def _read_one(tmp_path: Path, ds: Dataset | Path) -> ImageSeries:
    """Write (or copy) one file into a fresh site and read its only item."""
    path = tmp_path / "imaging" / "file.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(ds, Path):
        path.write_bytes(ds.read_bytes())
    else:
        ds.save_as(path, enforce_file_format=True)
    modality = ImagingModality(ImagingSettings())
    discovery = modality.discover(tmp_path / "imaging")
    assert not discovery.rejections, discovery.rejections
    return modality.read(discovery.items[0])


def _image(stored: np.ndarray, photometric: str, bits_stored: int, **attributes: object) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ComputedRadiographyImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = generate_uid(), generate_uid(), "MRN7"
    ds.set_pixel_data(stored, photometric, bits_stored, generate_instance_uid=False)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _testdata(name: str) -> Path:
    return Path(get_testdata_file(name, download=False))


def test_rescale_slope_and_intercept_give_output_units(tmp_path: Path) -> None:
    stored = np.array([[-1000, 0], [24, 3000]], dtype=np.int16)
    series = _read_one(tmp_path, _image(stored, "MONOCHROME2", 16, RescaleSlope=0.5, RescaleIntercept=-1024))
    assert series.pixels.dtype == np.float32 and series.pixels.shape == (1, 2, 2)
    np.testing.assert_array_equal(series.pixels[0], stored * 0.5 - 1024)


def test_monochrome1_is_mirrored_so_higher_is_brighter(tmp_path: Path) -> None:
    stored = np.array([[0, 1], [2000, 4095]], dtype=np.uint16)
    ds = _image(stored, "MONOCHROME1", 12, RescaleSlope=2, RescaleIntercept=-100)
    pixels = _read_one(tmp_path, ds).pixels[0]
    # Output range of 12-bit stored values: [-100, 8090]; MONOCHROME1 mirrors within it.
    np.testing.assert_array_equal(pixels, (-100 + 8090) - (stored * 2.0 - 100))
    assert pixels[0, 0] == pixels.max() and pixels[1, 1] == pixels.min()  # stored 0 is white


def test_real_monochrome1_radiograph(tmp_path: Path) -> None:
    path = Path(get_testdata_file("DICOMDIR", download=False)).parent / "77654033" / "CR1" / "6154"
    ds = pydicom.dcmread(path)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert (ds.BitsStored, ds.PixelRepresentation) == (12, 0)
    low, high = intercept, (2 ** 12 - 1) * slope + intercept
    expected = (low + high) - (ds.pixel_array * slope + intercept)
    np.testing.assert_allclose(_read_one(tmp_path, path).pixels[0], expected, rtol=1e-6)


def test_enhanced_multiframe_rescale_from_functional_groups(tmp_path: Path) -> None:
    stored = np.arange(3 * 4 * 4, dtype=np.int16).reshape(3, 4, 4)
    ds = _image(stored, "MONOCHROME2", 16)
    ds.SOPClassUID = MRImageStorage
    shared, transform = Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = 2, 0
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for intercept in (0, 10, 20):
        group, per_frame = Dataset(), Dataset()
        per_frame.RescaleSlope, per_frame.RescaleIntercept = 2, intercept
        group.PixelValueTransformationSequence = [per_frame]
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = frames
    expected = stored * 2.0 + np.array([0, 10, 20])[:, None, None]
    np.testing.assert_array_equal(decode_frames(ds, ExplicitVRLittleEndian), expected)
    series = _read_one(tmp_path, ds)  # the central frame alone, with its own intercept
    assert series.pixels.shape == (1, 4, 4) and series.frames == 3
    np.testing.assert_array_equal(series.pixels, expected[1:2])


def test_multiframe_colour_file_is_expanded_to_luminance_frames(tmp_path: Path) -> None:
    path = _testdata("SC_rgb_rle_2frame.dcm")
    ds = pydicom.dcmread(path)
    luminance = ds.pixel_array.astype(np.float64) @ LUMA
    frames = decode_frames(ds, ds.file_meta.TransferSyntaxUID)
    assert frames.shape == (2, 100, 100)
    np.testing.assert_allclose(frames, luminance, rtol=1e-5)
    np.testing.assert_allclose(_read_one(tmp_path, path).pixels, luminance[1:2], rtol=1e-5)  # even: upper


def test_ycbcr_and_palette_colour_become_luminance(tmp_path: Path) -> None:
    ybr = _testdata("SC_rgb_jpeg_dcmtk.dcm")  # YBR_FULL JPEG baseline: pydicom converts to RGB first
    np.testing.assert_allclose(_read_one(tmp_path / "ybr", ybr).pixels[0],
                               pydicom.dcmread(ybr).pixel_array @ LUMA, rtol=1e-5)
    palette = _testdata("examples_palette.dcm")
    ds = pydicom.dcmread(palette)
    np.testing.assert_allclose(_read_one(tmp_path / "pal", palette).pixels[0],
                               apply_color_lut(ds.pixel_array, ds) @ LUMA, rtol=1e-5)


def test_only_the_central_slice_of_a_sorted_series_is_decoded(tmp_path: Path) -> None:
    root = Path(get_testdata_file("DICOMDIR", download=False)).parent / "98892001" / "CT5N"
    (tmp_path / "imaging").mkdir()
    for path in root.iterdir():
        (tmp_path / "imaging" / path.name).write_bytes(path.read_bytes())
    axial = [pydicom.dcmread(p) for p in (tmp_path / "imaging").iterdir()]
    assert all([float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0] for ds in axial)
    central = sorted(axial, key=lambda ds: float(ds.ImagePositionPatient[2]))[2]
    for ds in axial:  # the other slices' pixel data is corrupt: decoding them would fail
        if ds.SOPInstanceUID != central.SOPInstanceUID:
            ds.PixelData = ds.PixelData[:10]
            ds.save_as(tmp_path / "imaging" / Path(ds.filename).name)
    modality = ImagingModality(ImagingSettings())
    item = modality.discover(tmp_path / "imaging").items[0]
    series = modality.read(item)
    assert series.pixels.shape == (1, 16, 16) and not series.pixels.flags.writeable and series.frames == 5
    np.testing.assert_array_equal(series.pixels[0], central.pixel_array * float(central.RescaleSlope)
                                  + float(central.RescaleIntercept))
    (header,) = series.datasets  # only what decoding and the features use: no UIDs, names or dates
    assert "PixelData" not in header and set(header.keys()) <= set(READ_TAGS) | {0x00080005}
    assert header.SliceThickness == central.SliceThickness and "SOPInstanceUID" not in header
    assert len(item.payload.files) == 5 and item.where == "imaging"


def test_a_corrupt_central_slice_rejects_the_item_naming_its_file(tmp_path: Path) -> None:
    root = Path(get_testdata_file("DICOMDIR", download=False)).parent / "98892001" / "CT5N"
    shutil.copytree(root, tmp_path / "imaging")
    modality = ImagingModality(ImagingSettings())
    item = modality.discover(tmp_path / "imaging").items[0]
    data = item.payload.path.read_bytes()
    item.payload.path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ItemRejected) as raised:
        modality.read(item)
    assert raised.value.rejection.code == "imaging.unreadable"
    assert raised.value.rejection.where == f"imaging#{item.payload.path.name}"


# One real file per transfer syntax: decoded values must equal pydicom's own decode (rescaled).
TRANSFER_SYNTAXES = {
    "Implicit VR Little Endian": "MR_small_implicit.dcm",
    "Explicit VR Big Endian": "MR_small_bigendian.dcm",
    "Deflated Explicit VR Little Endian": "image_dfl.dcm",
    "RLE Lossless": "MR_small_RLE.dcm",
    "JPEG Baseline (Process 1)": "SC_rgb_jpeg_dcmtk.dcm",
    "JPEG Extended (Process 2 and 4)": "JPGExtended.dcm",
    "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])":
        "SC_rgb_jpeg_gdcm.dcm",
    "JPEG-LS Lossless Image Compression": "MR_small_jpeg_ls_lossless.dcm",
    "JPEG-LS Lossy (Near-Lossless) Image Compression": "JPEGLSNearLossless_16.dcm",
    "JPEG 2000 Image Compression (Lossless Only)": "MR_small_jp2klossless.dcm",
    "JPEG 2000 Image Compression": "693_J2KI.dcm",
}


@pytest.mark.parametrize(("syntax", "name"), TRANSFER_SYNTAXES.items())
def test_transfer_syntax_decodes(syntax: str, name: str, tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testdata(name))
    assert ds.file_meta.TransferSyntaxUID.name == syntax
    ds.PatientID = ds.get("PatientID") or "MRN-TS"  # a few bundled files carry none
    reference = ds.pixel_array.astype(np.float64)
    if reference.ndim == 3:
        reference = reference @ LUMA
    else:
        reference = reference * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    np.testing.assert_allclose(_read_one(tmp_path, ds).pixels[0], reference, rtol=1e-5)


def test_lossless_variants_of_one_image_decode_identically(tmp_path: Path) -> None:
    reference = _read_one(tmp_path / "ref", _testdata("MR_small.dcm")).pixels
    for name in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                 "MR_small_expb.dcm", "MR_small_implicit.dcm", "MR_small_padded.dcm"):
        np.testing.assert_array_equal(_read_one(tmp_path / name, _testdata(name)).pixels, reference)


@pytest.mark.parametrize(("name", "code"), [
    ("MR_truncated.dcm", "imaging.unreadable"),
    ("JPEG2000-embedded-sequence-delimiter.dcm", "imaging.decode-failed"),
])
def test_broken_pixel_data_is_rejected_at_read(name: str, code: str, tmp_path: Path) -> None:
    with pytest.raises(ItemRejected) as raised:
        _read_one(tmp_path, _testdata(name))
    assert raised.value.rejection.code == code and raised.value.rejection.where == "imaging/file.dcm"


def test_truncated_compressed_pixel_data_is_unreadable(tmp_path: Path) -> None:
    data = _testdata("MR_small_RLE.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 2000])  # the file ends inside its RLE fragments
    with pytest.raises(ItemRejected) as raised:
        _read_one(tmp_path, cut)
    rejection = raised.value.rejection
    assert rejection.code == "imaging.unreadable" and "truncated" in rejection.message


def test_central_frame_counts_every_file_s_frames(tmp_path: Path) -> None:
    series_uid, study_uid = generate_uid(), generate_uid()
    root = tmp_path / "imaging"
    root.mkdir()
    for instance, frames in ((1, 1), (2, 3), (3, 2)):  # the stack: 1, 2, 2, 2, 3, 3
        stored = np.arange(frames * 16, dtype=np.uint16).reshape(frames, 4, 4) + 100 * instance
        if frames == 1:
            stored = stored[0]  # a single-frame image is (rows, cols)
        ds = _image(stored, "MONOCHROME2", 16, InstanceNumber=instance)
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.save_as(root / f"{instance}.dcm", enforce_file_format=True)
    modality = ImagingModality(ImagingSettings())
    item = modality.discover(root).items[0]
    assert (item.payload.path.name, item.payload.index, item.payload.frames) == ("2.dcm", 2, 6)
    series = modality.read(item)
    np.testing.assert_array_equal(series.pixels[0], np.arange(32, 48).reshape(4, 4) + 200)
    assert series.frames == 6
