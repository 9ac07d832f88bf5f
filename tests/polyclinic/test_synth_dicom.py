"""Every synthetic DICOM file decodes with pydicom and carries what each site's scanner writes."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    BasicTextSRStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from polyclinic.synth import GroundTruth, generate
from polyclinic.synth.dicom_datasets import PRIVATE_CREATOR, PRIVATE_GROUP, PRIVATE_NAME_ELEMENT
from polyclinic.synth.phantom import hounsfield, nodule_mask

SCANNERS = {  # profile -> transfer syntax, photometric, size, spacing, slices per series
    "A": (ExplicitVRLittleEndian, "MONOCHROME2", 128, 0.7, 1),
    "B": (ImplicitVRLittleEndian, "MONOCHROME1", 96, 0.9, 5),
    "C": (RLELossless, "MONOCHROME2", 128, 0.75, 1),
}
REQUIRED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAddress",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "InstitutionName",
    "Manufacturer",
    "PixelSpacing",
    "SliceThickness",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "InstanceNumber",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    out = tmp_path_factory.mktemp("synth-dicom")
    return out, generate(out, sites=3, patients=14, seed=3)


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return hounsfield(
        ds.pixel_array,
        photometric=ds.PhotometricInterpretation,
        bits_stored=ds.BitsStored,
        slope=float(ds.RescaleSlope),
        intercept=float(ds.RescaleIntercept),
    )


def test_every_ct_file_decodes_with_the_sites_encoding_and_tags(federation):
    out, truth = federation
    for site in truth.sites:
        syntax, photometric, size, spacing, slices = SCANNERS[site.profile]
        manufacturers = set()
        for patient in site.patients:
            assert len(patient.imaging_files) == (slices if patient.imaging == "series" else 0)
            for rel in patient.imaging_files:
                ds = pydicom.dcmread(out / site.id / rel)
                assert ds.file_meta.TransferSyntaxUID == syntax and ds.SOPClassUID == CTImageStorage
                assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
                assert ds.Modality == "CT" and ds.PhotometricInterpretation == photometric
                assert ds.pixel_array.shape == (size, size) and float(ds.PixelSpacing[0]) == spacing
                assert all(str(ds.get(k, "")) for k in REQUIRED), [
                    k for k in REQUIRED if not str(ds.get(k, ""))
                ]
                assert (
                    ds.PatientID == patient.mrn and str(ds.PatientName) == f"{patient.family}^{patient.given}"
                )
                assert ds.PatientBirthDate == patient.birth_date.replace("-", "")
                assert ds.AccessionNumber == patient.accession and ds.StudyDate < "20250101"
                assert ds.BurnedInAnnotation == "NO"
                assert all(ds[k].value.startswith("2.25.") for k in ("StudyInstanceUID", "SeriesInstanceUID"))
                block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
                value = block[PRIVATE_NAME_ELEMENT].value  # bytes (VR UN) in Implicit VR files
                assert (value.decode() if isinstance(value, bytes) else value).rstrip(
                    " \0"
                ) == f"{patient.family}^{patient.given}"
                hu = _hu(ds)
                assert hu[:3, :3].mean() < -900, "corners are air once MONOCHROME1 and Rescale are applied"
                assert (
                    -150 < np.median(hu[size // 2 - 2 : size // 2 + 2, size // 2 - 2 : size // 2 + 2]) < 200
                )
                manufacturers.add(ds.Manufacturer)
        assert len(manufacturers) == 1


def test_series_are_consistent_and_the_nodule_sits_in_the_central_slices(federation):
    out, truth = federation
    site = truth.site("hospital-b")
    for patient in site.patients:
        if not patient.imaging_files:
            continue
        series = sorted(
            (pydicom.dcmread(out / site.id / rel) for rel in patient.imaging_files),
            key=lambda ds: float(ds.ImagePositionPatient[2]),
        )
        assert [int(ds.InstanceNumber) for ds in series] == [1, 2, 3, 4, 5]
        assert (
            len({ds.SeriesInstanceUID for ds in series}) == 1
            and len({ds.SOPInstanceUID for ds in series}) == 5
        )
        assert np.allclose(np.diff([float(ds.ImagePositionPatient[2]) for ds in series]), 2.5)
        areas = [int(nodule_mask(_hu(ds)).sum()) for ds in series]
        assert (areas[2] > 0) == (patient.nodule_mm > 0)
        assert areas[0] == areas[4] == 0 or patient.nodule_mm > 5
        assert areas[2] >= max(areas[0], areas[4])


def test_nodule_in_the_pixels_matches_the_ground_truth(federation):
    out, truth = federation
    for site in (truth.site("hospital-a"), truth.site("hospital-c")):
        for patient in site.patients:
            for rel in patient.imaging_files:
                ds = pydicom.dcmread(out / site.id / rel)
                area_mm2 = nodule_mask(_hu(ds)).sum() * float(ds.PixelSpacing[0]) ** 2
                measured = 2 * np.sqrt(area_mm2 / np.pi)
                assert measured == pytest.approx(patient.nodule_mm, abs=1.0)


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_bad_imaging_files_fail_the_way_the_ground_truth_says(federation):
    out, truth = federation
    seen = defaultdict(int)
    for site in truth.sites:
        for bad in (b for b in site.bad_files if b.modality == "imaging"):
            path = out / site.id / bad.path
            seen[bad.kind] += 1
            if bad.kind == "not-dicom":
                with pytest.raises(InvalidDicomError):
                    pydicom.dcmread(path)
            elif bad.kind == "truncated":
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                assert ds.PatientID == bad.patient
                with pytest.raises((ValueError, AttributeError)):  # short pixel data / no pixel data
                    _ = pydicom.dcmread(path).pixel_array
            else:
                ds = pydicom.dcmread(path)
                assert bad.kind == "no-pixels" and ds.SOPClassUID == BasicTextSRStorage
                assert "PixelData" not in ds and ds.PatientID == bad.patient
                ct = pydicom.dcmread(out / site.id / site.patient(bad.patient).imaging_files[0])
                assert (
                    ds.StudyInstanceUID == ct.StudyInstanceUID
                    and ds.SeriesInstanceUID != ct.SeriesInstanceUID
                )
    assert seen == {"not-dicom": 3, "truncated": 3, "no-pixels": 1}


def test_all_dicom_files_under_imaging_are_accounted_for(federation):
    out, truth = federation
    for site in truth.sites:
        on_disk = {
            p.relative_to(out / site.id).as_posix()
            for p in (out / site.id / "imaging").rglob("*")
            if p.is_file()
        }
        listed = {f for p in site.patients for f in p.imaging_files} | {
            b.path for b in site.bad_files if b.modality == "imaging"
        }
        assert on_disk == listed
        assert all(p.endswith(".dcm") for p in on_disk if not p.endswith("notes.txt"))
