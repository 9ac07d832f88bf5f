"""Discovery on real files: which series a patient's item is, in what order, and why files are set aside."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, RLELossless, generate_uid

from modalities.base import Modality, create_modality
from modalities.imaging import REASONS, ImagingModality
from modalities.imaging import headers as imaging_headers
from modalities.imaging.settings import ImagingSettings

DICOMDIR_TREE = Path(get_testdata_file("DICOMDIR", download=False)).parent


def _modality() -> ImagingModality:
    return ImagingModality(ImagingSettings())


def _ct(patient: str = "MRN1", study: str = "1.2.3.1", series: str = "1.2.3.1.1", date: str = "20200101",
        instance: int = 1) -> pydicom.Dataset:
    """CT_small re-labelled: same pixels and header, chosen patient, study, series and instance."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyDate = patient, study, series, date
    ds.SOPInstanceUID, ds.InstanceNumber = generate_uid(), instance
    return ds


def _save(ds: pydicom.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _codes(root: Path) -> list[str]:
    return [r.code for r in _modality().discover(root).rejections]


def test_registered_under_its_name() -> None:
    modality = create_modality("imaging", settings=ImagingSettings())
    assert isinstance(modality, ImagingModality) and isinstance(modality, Modality)
    assert (modality.name, modality.folder) == ("imaging", "imaging")


def test_dicomdir_tree_one_item_per_patient_latest_study_then_most_slices(tmp_path: Path) -> None:
    shutil.copytree(DICOMDIR_TREE, tmp_path / "imaging")
    discovery = _modality().discover(tmp_path / "imaging")
    items = {item.patient_id: item for item in discovery.items}
    assert set(items) == {"77654033", "98890234"}
    # 77654033: three one-image CR series of 2001 beat a four-slice CT of 1995; ties go to the first path.
    assert [p.name for p in items["77654033"].payload.files] == ["6154"]
    assert items["77654033"].where == "imaging/77654033/CR1/6154"
    # 98890234: of the 2003 MR series, MR700 has the most slices (7); its folder holds only it.
    assert len(items["98890234"].payload.files) == 7 and items["98890234"].where == "imaging/98892003/MR700"
    assert discovery.skipped == {"extra-series": 6 + 17}
    assert sorted(set(_codes(tmp_path / "imaging"))) == [
        "imaging.dicomdir", "imaging.no-pixels", "imaging.not-dicom"]


def test_slices_sorted_along_the_normal_not_by_instance_number(tmp_path: Path) -> None:
    shutil.copytree(DICOMDIR_TREE / "98892003" / "MR700", tmp_path / "imaging" / "MR700")
    (item,) = _modality().discover(tmp_path / "imaging").items
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in item.payload.files]
    orientation = np.array(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    distances = [float(np.dot(np.array(h.ImagePositionPatient, dtype=float), normal)) for h in headers]
    assert distances == sorted(distances)
    assert [int(h.InstanceNumber) for h in headers] != sorted(int(h.InstanceNumber) for h in headers)


def test_axial_ct_series_sorted_by_position_inverse_to_instance_numbers(tmp_path: Path) -> None:
    shutil.copytree(DICOMDIR_TREE / "98892001" / "CT5N", tmp_path / "imaging" / "CT5N")
    (item,) = _modality().discover(tmp_path / "imaging").items
    assert [p.name for p in item.payload.files] == ["3353", "3023", "2693", "2392", "2062"]


def test_without_positions_instance_number_orders(tmp_path: Path) -> None:
    for instance in (3, 1, 2):
        ds = _ct(instance=instance)
        del ds.ImagePositionPatient
        _save(ds, tmp_path / "imaging" / f"file{4 - instance}.dcm")
    (item,) = _modality().discover(tmp_path / "imaging").items
    assert [int(pydicom.dcmread(p).InstanceNumber) for p in item.payload.files] == [1, 2, 3]


def test_latest_study_wins_over_more_slices_and_more_slices_break_date_ties(tmp_path: Path) -> None:
    root = tmp_path / "imaging"
    for i in range(3):
        _save(_ct(study="1.1", series="1.1.1", date="20190101", instance=i), root / "old" / f"{i}.dcm")
    _save(_ct(study="1.2", series="1.2.1", date="20210101"), root / "new-small" / "0.dcm")
    for i in range(2):
        _save(_ct(study="1.2", series="1.2.2", date="20210101", instance=i), root / "new-large" / f"{i}.dcm")
    discovery = _modality().discover(root)
    (item,) = discovery.items
    assert item.where == "imaging/new-large" and len(item.payload.files) == 2
    assert discovery.skipped == {"extra-series": 4} and discovery.found == 6


def test_minority_shape_slices_are_rejected_and_the_majority_kept(tmp_path: Path) -> None:
    root = tmp_path / "imaging"
    for i in range(3):
        _save(_ct(instance=i), root / f"{i}.dcm")
    odd = _ct(instance=9)
    odd.set_pixel_data(np.zeros((32, 32), dtype=np.int16), "MONOCHROME2", 16, generate_instance_uid=False)
    _save(odd, root / "odd.dcm")
    discovery = _modality().discover(root)
    (item,) = discovery.items
    assert len(item.payload.files) == 3 and "odd.dcm" not in {p.name for p in item.payload.files}
    (rejection,) = discovery.rejections
    assert rejection.code == "imaging.inconsistent-series" and rejection.where == "imaging/odd.dcm"
    assert "32x32" in rejection.message and "128x128" in rejection.message


def test_header_checks_reject_with_their_codes(tmp_path: Path) -> None:
    root = tmp_path / "imaging"
    no_id = _ct(patient="")
    burned = _ct(patient="MRN2")
    burned.BurnedInAnnotation = "YES"
    _save(no_id, root / "no-id.dcm")
    _save(burned, root / "burned.dcm")
    (root / "notes.txt").write_text("Export notes: call extension 4471\n")
    (root / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    rejections = {r.where.rsplit("/", 1)[1]: r for r in _modality().discover(root).rejections}
    assert {k: r.code for k, r in rejections.items()} == {
        "no-id.dcm": "imaging.no-patient-id", "burned.dcm": "imaging.burned-in-annotation",
        "notes.txt": "imaging.not-dicom", "random.bin": "imaging.not-dicom"}
    assert all(r.code in REASONS and r.hint for r in rejections.values())


def test_video_transfer_syntax_is_named_with_what_to_do(tmp_path: Path) -> None:
    ds = _ct()
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    _save(ds, tmp_path / "imaging" / "video.dcm")
    (rejection,) = _modality().discover(tmp_path / "imaging").rejections
    assert rejection.code == "imaging.unsupported-transfer-syntax"
    assert "MPEG2 Main Profile / Main Level" in rejection.message and "export the frames" in rejection.hint


def test_missing_decoder_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Unavailable:
        is_available = False
        missing_dependencies = ("pylibjpeg - requires numpy, pylibjpeg>=2.0 and pylibjpeg-rle>=2.0",)

    monkeypatch.setattr(imaging_headers, "get_decoder", lambda uid: Unavailable())
    rle = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm", download=False))
    assert rle.file_meta.TransferSyntaxUID == RLELossless
    _save(rle, tmp_path / "imaging" / "rle.dcm")
    (rejection,) = _modality().discover(tmp_path / "imaging").rejections
    assert rejection.code == "imaging.unsupported-transfer-syntax"
    assert "RLE Lossless" in rejection.message and "pylibjpeg-rle" in rejection.message


def test_file_without_preamble_and_meta_is_read_as_a_raw_data_set(tmp_path: Path) -> None:
    ds = _ct()
    ds.preamble = None
    del ds.file_meta
    path = tmp_path / "imaging" / "raw.dcm"
    path.parent.mkdir(parents=True)
    ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    modality = _modality()
    (item,) = modality.discover(tmp_path / "imaging").items
    series = modality.read(item)
    reference = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    np.testing.assert_array_equal(series.pixels[0], reference.pixel_array.astype(np.float32) - 1024)


def test_symlink_loop_dangling_link_and_fifo_are_rejected_without_hanging(tmp_path: Path) -> None:
    root = tmp_path / "imaging"
    _save(_ct(), root / "series" / "0.dcm")
    os.symlink(root, root / "series" / "loop")
    os.symlink(root / "gone.dcm", root / "dangling.dcm")
    os.mkfifo(root / "pipe.dcm")
    discovery = _modality().discover(root)
    assert len(discovery.items) == 1
    assert sorted(r.code for r in discovery.rejections) == [
        "imaging.symlink-loop", "imaging.unreadable", "imaging.unreadable"]
    assert discovery.found == 1 + 3


def test_unreadable_file(tmp_path: Path) -> None:
    path = _save(_ct(), tmp_path / "imaging" / "locked.dcm")
    path.chmod(0)
    try:
        discovery = _modality().discover(tmp_path / "imaging")
    finally:
        path.chmod(0o644)
    if os.geteuid() == 0:  # root reads any file: the permission bits stop nobody, so the file is used
        assert len(discovery.items) == 1 and not discovery.rejections
    else:
        (rejection,) = discovery.rejections
        assert rejection.code == "imaging.unreadable" and "ermission" in rejection.message


def test_fingerprint_follows_the_bytes(tmp_path: Path) -> None:
    path = _save(_ct(), tmp_path / "imaging" / "0.dcm")
    before = _modality().discover(tmp_path / "imaging").items[0].fingerprint
    ds = pydicom.dcmread(path)
    ds.SliceThickness = 2.5
    ds.save_as(path)
    assert _modality().discover(tmp_path / "imaging").items[0].fingerprint != before


def test_missing_folder_is_empty() -> None:
    discovery = _modality().discover(Path("/nonexistent/site/imaging"))
    assert (discovery.found, discovery.items, discovery.rejections) == (0, [], [])


def test_malformed_values_are_read_without_a_warning_that_quotes_them(tmp_path: Path) -> None:
    """pydicom warns about a value its VR does not allow and quotes it; a malformed date or identifier
    must not reach stderr or a log that way, whether discovery or read meets it."""
    ds = _ct(patient="MRN-" + "7" * 70, date="2020-01-31")  # a 74-character LO and a DA with hyphens
    ds.PatientBirthDate = "1957-03-12"
    ds.PatientName = "Doe^Jane^" + "x" * 80
    ds.StudyInstanceUID = "1.2.3.4.MRN7"  # letters: not a valid UI
    with pydicom.config.disable_value_validation():
        _save(ds, tmp_path / "imaging" / "odd.dcm")
    modality = _modality()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = modality.discover(tmp_path / "imaging").items
        modality.read(items[0])
    assert items and items[0].patient_id == ds.PatientID
    quoted = [str(w.message) for w in caught if any(value in str(w.message) for value in (
        "2020-01-31", "1957-03-12", "MRN7", "Doe^Jane", "7777"))]
    assert not quoted
