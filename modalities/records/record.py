"""One patient's FHIR content as the rest of Polyclinic sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modalities.records.releases import Release


@dataclass(frozen=True)
class RecordsPayload:
    """An item's payload: the patient's validated resources (Patient first) and the patient's release."""

    fhir_version: Release
    resources: tuple[Any, ...]


@dataclass
class PatientRecord:
    """A patient's validated fhir.resources models, by type.

    ``read`` returns it still identifying (only the consent decision and the de-identifier see that);
    the de-identifier returns a new one with identifiers removed and ``age_at_index`` filled from the
    birth date, which is the only form ``features`` accepts. Each model is of the release it was read
    with (see :mod:`modalities.records.releases`); ``fhir_version`` is the patient's release.
    """

    patient: Any
    observations: list[Any] = field(default_factory=list)
    conditions: list[Any] = field(default_factory=list)
    consents: list[Any] = field(default_factory=list)
    fhir_version: Release = "R4B"
    age_at_index: float | None = None

    @classmethod
    def from_payload(cls, payload: RecordsPayload) -> PatientRecord:
        by_type: dict[str, list[Any]] = {"Patient": [], "Observation": [], "Condition": [], "Consent": []}
        for resource in payload.resources:
            by_type[resource.get_resource_type()].append(resource)
        return cls(
            by_type["Patient"][0],
            by_type["Observation"],
            by_type["Condition"],
            by_type["Consent"],
            payload.fhir_version,
        )
