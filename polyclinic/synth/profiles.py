"""The three kinds of hospital in the synthetic federation and what differs between them.

Real consortia differ in scanners, file encodings, FHIR releases, coding systems, table layouts and
patient mix all at once; each profile fixes one such combination so that every reader and every
harmonisation step is exercised. Sites beyond the third cycle through the profiles A, B, C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless


@dataclass(frozen=True)
class Scanner:
    """How a site's CT scanner samples and encodes the same physical phantom."""

    manufacturer: str
    model: str
    size: int  # rows = columns
    spacing_mm: float
    slices: int  # slices per series, the nodule sits in the central ones
    slice_thickness_mm: float
    transfer_syntax: UID
    photometric: Literal["MONOCHROME1", "MONOCHROME2"]
    signed: bool  # PixelRepresentation 1: stored values are signed
    bits_stored: int
    rescale_slope: float
    rescale_intercept: float
    gain: float  # calibration: recorded HU = gain * true HU + offset
    offset_hu: float
    noise_hu: float


@dataclass(frozen=True)
class SiteProfile:
    """Everything that makes one hospital's data look like that hospital's."""

    key: Literal["A", "B", "C"]
    consent_policy: Literal["opt-in", "opt-out"]
    institution: str
    prevalence: float  # marginal P(y = 1) before the mild age and smoking effects
    female_fraction: float
    age_mean: float
    age_sd: float
    smoking_rate: float
    race_mix: dict[str, float]  # vocabulary.RACES code -> probability
    mrn_prefix: str  # letters outside a-f, so an MRN can never hide in a hex file name
    mrn_digits: int
    scanner: Scanner
    fhir_release: Literal["R4", "R5"]
    fhir_layout: Literal["bundle-per-patient", "bundles", "ndjson"]
    patient_id_is_mrn: bool  # else Patient.id is a UUID and the MRN is an identifier of type MR
    target_coding: Literal["snomed", "icd10", "snomed+icd10"]
    genomics: Literal["csv", "tsv"] | None
    genomics_quirks: bool  # missing panel genes, NaN cells, a duplicated sample, a patient_name column
    batch_sd: float  # per-gene offset spread of the site's expression batch effect
    text_report: bool  # writes a Basic Text SR (a DICOM file without pixels) into imaging/
    imaging_depth: int  # folders between imaging/ and a .dcm file (PACS exports nest differently)


PROFILES: tuple[SiteProfile, ...] = (
    SiteProfile(
        key="A",
        consent_policy="opt-in",
        institution="Northfield General Hospital",
        prevalence=0.35,
        female_fraction=0.50,
        age_mean=64.0,
        age_sd=10.0,
        smoking_rate=0.30,
        race_mix={"2106-3": 0.70, "2054-5": 0.15, "2028-9": 0.10, "2131-1": 0.05},
        mrn_prefix="MRN",
        mrn_digits=7,
        scanner=Scanner(
            manufacturer="Acme Medical Systems",
            model="Tomo 64",
            size=128,
            spacing_mm=0.7,
            slices=1,
            slice_thickness_mm=1.0,
            transfer_syntax=ExplicitVRLittleEndian,
            photometric="MONOCHROME2",
            signed=False,
            bits_stored=12,
            rescale_slope=1.0,
            rescale_intercept=-1024.0,
            gain=1.0,
            offset_hu=0.0,
            noise_hu=12.0,
        ),
        fhir_release="R4",
        fhir_layout="bundle-per-patient",
        patient_id_is_mrn=True,
        target_coding="snomed",
        genomics="csv",
        genomics_quirks=False,
        batch_sd=0.25,
        text_report=False,
        imaging_depth=1,
    ),
    SiteProfile(
        key="B",
        consent_policy="opt-out",
        institution="Riverside University Medical Centre",
        prevalence=0.42,
        female_fraction=0.44,
        age_mean=67.0,
        age_sd=9.0,
        smoking_rate=0.40,
        race_mix={"2106-3": 0.45, "2054-5": 0.35, "2028-9": 0.08, "2131-1": 0.12},
        mrn_prefix="HR",
        mrn_digits=8,
        scanner=Scanner(
            manufacturer="Globex Imaging",
            model="Helix Pro",
            size=96,
            spacing_mm=0.9,
            slices=5,
            slice_thickness_mm=2.5,
            transfer_syntax=ImplicitVRLittleEndian,
            photometric="MONOCHROME1",
            signed=False,
            bits_stored=12,
            rescale_slope=1.0,
            rescale_intercept=-1000.0,
            gain=1.08,
            offset_hu=25.0,
            noise_hu=25.0,
        ),
        fhir_release="R5",
        fhir_layout="bundles",
        patient_id_is_mrn=False,
        target_coding="icd10",
        genomics="tsv",
        genomics_quirks=True,
        batch_sd=0.5,
        text_report=True,
        imaging_depth=2,
    ),
    SiteProfile(
        key="C",
        consent_policy="opt-out",
        institution="St. Wendel Community Hospital",
        prevalence=0.30,
        female_fraction=0.56,
        age_mean=59.0,
        age_sd=12.0,
        smoking_rate=0.33,
        race_mix={"2106-3": 0.35, "2054-5": 0.15, "2028-9": 0.40, "2131-1": 0.10},
        mrn_prefix="PT",
        mrn_digits=6,
        scanner=Scanner(
            manufacturer="Initech Healthcare",
            model="Vista CT",
            size=128,
            spacing_mm=0.75,
            slices=1,
            slice_thickness_mm=1.25,
            transfer_syntax=RLELossless,
            photometric="MONOCHROME2",
            signed=True,
            bits_stored=16,
            rescale_slope=1.0,
            rescale_intercept=0.0,
            gain=0.95,
            offset_hu=-10.0,
            noise_hu=18.0,
        ),
        fhir_release="R4",
        fhir_layout="ndjson",
        patient_id_is_mrn=False,
        target_coding="snomed+icd10",
        genomics=None,
        genomics_quirks=False,
        batch_sd=0.0,
        text_report=False,
        imaging_depth=0,
    ),
)


def site_id(index: int) -> str:
    """``hospital-a``, ``hospital-b``, ..., ``hospital-z``, ``hospital-aa``, ... (bijective base 26)."""
    letters = ""
    n = index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return f"hospital-{letters}"


def profile_for(index: int) -> SiteProfile:
    """The profile of the ``index``-th site (0-based): A, B, C, A, B, C, ..."""
    return PROFILES[index % len(PROFILES)]
