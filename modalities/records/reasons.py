"""Every way a FHIR input can be set aside, in one place: stable codes the data steward can look up.

Codes are ``records.<reason>``; the Site counts them, the audit trail stores them and the steward's
report explains them with this table, so a code never changes meaning once released.
"""

from __future__ import annotations

from modalities.base import ReasonBook

MODALITY = "records"

REASONS: dict[str, str] = {
    "records.invalid-json": "the file (or the NDJSON line, ``#line=N``) is not valid UTF-8 JSON",
    "records.not-fhir": "JSON that is not a FHIR resource: no known ``resourceType``, or not an object",
    "records.invalid-resource": (
        "a Patient, Observation, Condition or Consent that validates as neither FHIR R5 nor R4/R4B; "
        "the message lists the failing elements and error kinds"
    ),
    "records.orphan-resource": "an Observation, Condition or Consent that refers to no Patient found here",
    "records.duplicate-patient": (
        "a second Patient resource with the same medical record number or id; the first in file order is kept"
    ),
    "records.no-patient-id": "a Patient with neither an MR identifier nor an id, so nothing can link to it",
    "records.empty-file": "a file with no resources: empty, blank lines only or a Bundle without entries",
    "records.unsupported-format": (
        "a file that is neither ``*.json``, ``*.ndjson`` nor ``*.ndjson.gz`` (e.g. FHIR XML)"
    ),
    "records.invalid-gzip": "a ``*.ndjson.gz`` file that is not a complete gzip stream",
    "records.unknown-unit": (
        "a study lab's Observation whose valueQuantity has no UCUM unit code listed for that lab "
        "(modalities.records.lab_units); it is set aside, never mixed in unconverted"
    ),
    "records.not-deidentified": (
        "features were asked of a record that still identifies the patient: a bug in the caller, not the data"
    ),
    "records.unreadable": "a file or folder that cannot be read (permissions, dangling link)",
    "records.symlink-loop": "a folder reached twice through symbolic links",
}


reject = ReasonBook(MODALITY, REASONS)
"""Make a Rejection with a documented ``records.<reason>`` code."""
