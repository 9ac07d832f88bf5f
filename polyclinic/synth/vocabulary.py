"""The clinical vocabulary of the synthetic federation, shared by the generator and the default study.

Real code systems (SNOMED CT, ICD-10, LOINC, the CDC race and ethnicity code set) so the pipeline is
exercised on the codes it meets in hospitals. Gene names are synthetic (``G001``..``G200``): the
generator plants a disease signature in a subset and nothing else about them is meant to be real.
"""

from __future__ import annotations

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
RACE_SYSTEM = "urn:oid:2.16.840.1.113883.6.238"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"

# The disease the default study predicts: malignant tumour of lung. Sites code it in either system.
TARGET_SNOMED = "363358000"
TARGET_ICD10 = "C34"  # an ICD-10 category: C34.0 .. C34.9 all match
TARGET_CODES = (f"{SNOMED}|{TARGET_SNOMED}", f"{ICD10}|{TARGET_ICD10}")

# LOINC code -> (display, unit). The generator shifts some with disease, the others are noise.
LABS: dict[str, tuple[str, str]] = {
    "1988-5": ("C reactive protein [Mass/volume] in Serum or Plasma", "mg/L"),
    "2532-0": ("Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", "U/L"),
    "6690-2": ("Leukocytes [#/volume] in Blood by Automated count", "10*3/uL"),
    "718-7": ("Hemoglobin [Mass/volume] in Blood", "g/dL"),
    "2039-6": ("Carcinoembryonic Ag [Mass/volume] in Serum or Plasma", "ng/mL"),
    "2160-0": ("Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
}

# SNOMED CT comorbidities recorded as Conditions.
COMORBIDITIES: dict[str, str] = {
    "13645005": "Chronic obstructive lung disease",
    "44054006": "Diabetes mellitus type 2",
    "38341003": "Hypertensive disorder",
    "77176002": "Smoker",
}

# CDC race code set (OMB categories), as carried by the US Core race extension.
RACES: dict[str, str] = {
    "2106-3": "White",
    "2054-5": "Black or African American",
    "2028-9": "Asian",
    "2131-1": "Other Race",
}

GENES: tuple[str, ...] = tuple(f"G{i:03d}" for i in range(1, 201))
GENE_PANEL: tuple[str, ...] = GENES[:64]
"""The default study's panel: the signature genes live in it, along with genes that carry no signal."""
SIGNATURE_GENES: tuple[str, ...] = GENES[:16]

GENOMICS_PATIENT_COLUMN = "patient_id"
INDEX_DATE = "2025-01-01"

REFERENCE_ATLAS_SEED = 20_251_205
REFERENCE_RANGE = (4.0, 10.0)
REFERENCE_ERROR_SD = 0.25
"""A federation's true per-gene baseline differs from the published reference by this much (sd, log units):
an atlas describes another population, measured on other platforms."""


def reference_expression() -> tuple[float, ...]:
    """The public reference profile (an expression atlas' per-gene medians) of every gene in ``GENES``.

    It plays the role of published data: the same for every seed, stated in the default study, so sites
    can normalise gene values against it without any statistic of their own patients (which DP-SGD would
    not cover). The generator draws each federation's baseline around it.
    """
    import numpy as np  # here: the vocabulary is imported by light command-line paths

    rng = np.random.default_rng(REFERENCE_ATLAS_SEED)
    return tuple(round(float(v), 4) for v in rng.uniform(*REFERENCE_RANGE, size=len(GENES)))
