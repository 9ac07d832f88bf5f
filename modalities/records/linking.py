"""Which patient each resource belongs to, and the patient's identifier for linking across modalities.

The raw identifier is the medical record number (a ``Patient.identifier`` typed ``MR`` in HL7 v2 table
0203), because that is what DICOM ``PatientID`` and the genomics tables carry; without one,
``Patient.id``. Resources point at their patient by ``Patient/<id>`` (relative or absolute), by a
Bundle ``fullUrl`` (``urn:uuid:...``) or by a logical identifier; anything else is an orphan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modalities.base import Rejection
from modalities.records.reading import RawResource
from modalities.records.reasons import reject
from modalities.records.releases import Release

MR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


@dataclass(frozen=True)
class Validated:
    """A raw resource and its model in every release that accepts it."""

    raw: RawResource
    models: dict[Release, Any]

    @property
    def model(self) -> Any:
        return next(iter(self.models.values()))


@dataclass
class PatientGroup:
    """One patient (the first Patient resource with its identifier) and the resources that refer to it."""

    key: str
    patient: Validated
    members: list[Validated] = field(default_factory=list)


def medical_record_number(patient: Any) -> str | None:
    """The value of the patient's first identifier typed MR (v2-0203), stripped; None without one."""
    for identifier in patient.identifier or []:
        value = (identifier.value or "").strip()
        codings = identifier.type.coding if identifier.type is not None and identifier.type.coding else []
        if value and any(c.system == MR_SYSTEM and c.code == "MR" for c in codings):
            return value
    return None


def subject_reference(model: Any) -> Any:
    """The Reference to the patient: ``subject`` (Observation, Condition, R5 Consent) or ``patient`` (R4)."""
    return getattr(model, "subject", None) or getattr(model, "patient", None)


class PatientIndex:
    """Patients by key, and every way a reference may name them."""

    def __init__(self) -> None:
        self.groups: dict[str, PatientGroup] = {}
        self._by_ref: dict[str, str] = {}
        self._by_identifier: dict[tuple[str | None, str], str] = {}

    def add(self, patient: Validated) -> Rejection | None:
        """Register a Patient; a second one with the same record number or id is a duplicate."""
        model = patient.model
        key = medical_record_number(model) or (model.id or "").strip()
        if not key:
            return reject(
                "no-patient-id",
                patient.raw.where,
                "this Patient has no MR identifier and no id",
                "give the Patient an identifier typed MR (v2-0203) or an id",
            )
        id_ref = f"Patient/{model.id}" if model.id else None
        names = [n for n in (id_ref, patient.raw.full_url) if n]
        same_person = key in self.groups
        clash = [n for n in names if self._by_ref.get(n, key) != key]
        if same_person or clash:
            if not clash:  # the same person exported twice: references to either copy still link
                for name in names:
                    self._by_ref.setdefault(name, key)
            what = "medical record number" if same_person else "id or fullUrl"
            return reject(
                "duplicate-patient",
                patient.raw.where,
                f"another Patient resource with the same {what} came first in file order; "
                "this one is ignored",
                "merge the duplicate Patient resources or remove one",
            )
        self.groups[key] = PatientGroup(key, patient)
        for name in names:
            self._by_ref[name] = key
        for identifier in model.identifier or []:
            if identifier.value:
                self._by_identifier.setdefault((identifier.system, identifier.value.strip()), key)
        return None

    def resolve(self, reference: Any) -> str | None:
        """The key of the patient a Reference points to, or None."""
        if reference is None:
            return None
        text = (reference.reference or "").strip()
        if text:
            if text in self._by_ref:
                return self._by_ref[text]
            match = _PATIENT_REF.search(text)
            return self._by_ref.get(f"Patient/{match.group(1)}") if match else None
        identifier = reference.identifier
        if identifier is not None and identifier.value:
            return self._by_identifier.get((identifier.system, identifier.value.strip()))
        return None


def link(resources: list[Validated]) -> tuple[list[PatientGroup], list[Rejection]]:
    """Group resources by patient: Patients first (so file order never orphans a resource), then the rest."""
    index = PatientIndex()
    rejections = [r for r in (index.add(v) for v in resources if v.raw.type == "Patient") if r is not None]
    for resource in resources:
        if resource.raw.type == "Patient":
            continue
        key = index.resolve(subject_reference(resource.model))
        if key is None:
            rejections.append(
                reject(
                    "orphan-resource",
                    resource.raw.where,
                    f"this {resource.raw.type} refers to no Patient found in the records folder",
                    "export the Patient with it, or fix its subject/patient reference",
                )
            )
            continue
        index.groups[key].members.append(resource)
    return list(index.groups.values()), rejections
