"""DICOM datasets as a hospital's PACS exports them: CT images and a Basic Text SR.

They carry the identifying attributes real files carry (name, MRN, birth date, address, accession,
referring physician, institution) and a vendor private block repeating the patient's name, so
de-identification is exercised on everything PS3.15's basic profile has to handle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, BasicTextSRStorage, CTImageStorage, ExplicitVRLittleEndian

from polyclinic.synth.people import PHYSICIANS
from polyclinic.synth.population import Patient
from polyclinic.synth.profiles import SiteProfile
from polyclinic.synth.seeding import dicom_uid

PRIVATE_GROUP, PRIVATE_CREATOR = 0x0009, "ACME_SCANNER"
PRIVATE_NAME_ELEMENT = 0x01  # (0009,1001) LO: the patient's name, as some scanners really do
LUNG_WINDOW = (-600.0, 1500.0)
TABLE_Z_MM = -120.0


@dataclass(frozen=True)
class Study:
    """One CT examination of one patient: its UIDs, accession number and date."""

    study_uid: str
    series_uid: str
    frame_uid: str
    accession: str
    date: dt.date
    time: str
    physician: str


def draw_study(rng: np.random.Generator) -> Study:
    """A study in 2024, before the index date, so it is always eligible."""
    date = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 350)))
    return Study(
        study_uid=dicom_uid(rng),
        series_uid=dicom_uid(rng),
        frame_uid=dicom_uid(rng),
        accession=f"RX{int(rng.integers(10**7, 10**8))}",
        date=date,
        time=f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
        physician=str(rng.choice(PHYSICIANS)),
    )


def _base(
    patient: Patient, profile: SiteProfile, study: Study, sop_class: UID, sop_uid: str, transfer_syntax: UID
) -> Dataset:
    """File meta, SOP common, patient, general study and equipment modules."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.time
    ds.AccessionNumber = study.accession
    ds.InstitutionName = profile.institution
    ds.Manufacturer = profile.scanner.manufacturer
    ds.ManufacturerModelName = profile.scanner.model
    ds.ReferringPhysicianName = study.physician
    ident = patient.identity
    ds.PatientName = ident.dicom_name
    ds.PatientID = ident.mrn
    ds.PatientBirthDate = ident.birth_date.strftime("%Y%m%d")
    ds.PatientSex = "F" if patient.female else "M"
    ds.PatientAge = f"{patient.age:03d}Y"
    ds.PatientAddress = f"{ident.address.line}, {ident.address.city} {ident.address.postal_code}"
    ds.StudyInstanceUID = study.study_uid
    ds.StudyID = "1"
    ds.StudyDescription = "CT CHEST"
    return ds


def ct_slice(
    patient: Patient,
    profile: SiteProfile,
    study: Study,
    *,
    sop_uid: str,
    number: int,
    z_mm: float,
    pixels: np.ndarray,
) -> Dataset:
    """One CT Image Storage instance holding ``pixels`` (stored values, already encoded by the scanner)."""
    scanner = profile.scanner
    ds = _base(patient, profile, study, CTImageStorage, sop_uid, scanner.transfer_syntax)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.SliceThickness = f"{scanner.slice_thickness_mm:g}"
    ds.SeriesInstanceUID = study.series_uid
    ds.SeriesNumber = 2
    ds.SeriesDescription = (
        "Chest 1mm" if scanner.slices == 1 else f"Chest {scanner.slices}x{scanner.slice_thickness_mm:g}mm"
    )
    ds.InstanceNumber = number
    half = (scanner.size - 1) / 2 * scanner.spacing_mm
    z = TABLE_Z_MM + z_mm
    ds.ImagePositionPatient = [f"{-half:.3f}", f"{-half:.3f}", f"{z:.3f}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = study.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:.3f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = scanner.photometric
    ds.Rows = ds.Columns = scanner.size
    ds.PixelSpacing = [f"{scanner.spacing_mm:g}", f"{scanner.spacing_mm:g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = scanner.bits_stored
    ds.HighBit = scanner.bits_stored - 1
    ds.PixelRepresentation = int(scanner.signed)
    ds.WindowCenter, ds.WindowWidth = (f"{v:g}" for v in LUNG_WINDOW)
    ds.RescaleIntercept = f"{scanner.rescale_intercept:g}"
    ds.RescaleSlope = f"{scanner.rescale_slope:g}"
    ds.RescaleType = "HU"
    ds.BurnedInAnnotation = "NO"
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(PRIVATE_NAME_ELEMENT, "LO", patient.identity.dicom_name)
    ds.PixelData = pixels.tobytes()
    if scanner.transfer_syntax.is_compressed:
        ds.compress(scanner.transfer_syntax, pixels, encoding_plugin="pydicom", generate_instance_uid=False)
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def text_report(patient: Patient, profile: SiteProfile, study: Study, rng: np.random.Generator) -> Dataset:
    """A Basic Text SR in the patient's CT study: a real DICOM object with no pixels to learn from."""
    ds = _base(patient, profile, study, BasicTextSRStorage, dicom_uid(rng), ExplicitVRLittleEndian)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = dicom_uid(rng)
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    finding = Dataset()
    finding.RelationshipType = "CONTAINS"
    finding.ValueType = "TEXT"
    finding.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    finding.TextValue = "Chest CT reviewed. Comparison with prior imaging recommended."
    ds.ContentSequence = Sequence([finding])
    return ds
