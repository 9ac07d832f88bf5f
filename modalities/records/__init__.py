"""FHIR records: importing this package registers the ``records`` modality."""

from modalities.records.features import feature_names
from modalities.records.modality import RecordsModality
from modalities.records.reasons import REASONS
from modalities.records.record import PatientRecord, RecordsPayload

__all__ = ["REASONS", "PatientRecord", "RecordsModality", "RecordsPayload", "feature_names"]
