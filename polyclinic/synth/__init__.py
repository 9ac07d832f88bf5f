"""Synthetic hospitals: DICOM, FHIR and genomics at several sites with known labels and identities.

``generate(out, sites=3, patients=120, seed=0)`` writes one folder per hospital and the ground truth;
docs/synthetic-hospitals.md describes the generative model.
"""

from polyclinic.synth.generate import GROUND_TRUTH, generate
from polyclinic.synth.truth import BadFile, GroundTruth, PatientTruth, SiteTruth

__all__ = ["GROUND_TRUTH", "BadFile", "GroundTruth", "PatientTruth", "SiteTruth", "generate"]
