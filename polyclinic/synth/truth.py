"""The ground truth of a synthetic federation: every identifying fact and every label, for tests.

It is written next to the site folders (``OUT/ground-truth.json``), never inside one, so a site's
data never contains its own answers. Tests use it to check that no identifier leaks, that labels
and consent decisions come out as generated, and that every bad file meets its expected outcome.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Outcome = Literal["rejected", "skipped"]


@dataclass(frozen=True)
class BadFile:
    """A deliberately bad input and what a correct pipeline does with it.

    ``kind`` says what is wrong (``not-dicom``, ``truncated``, ``no-pixels``, ``unused-resource-type``,
    ``unknown-unit``);
    ``expected`` is ``rejected`` (counted as a rejection) or ``skipped`` (counted as ignored by type).
    ``fragment`` locates a resource inside a file (``Encounter/<id>``, ``Observation/<id>``),
    ``patient`` is the MRN it belongs to, if any.
    """

    path: str  # relative to the site folder
    modality: str
    kind: str
    expected: Outcome
    fragment: str = ""
    patient: str | None = None


@dataclass(frozen=True)
class PatientTruth:
    mrn: str
    record_id: str  # FHIR Patient.id
    given: str
    family: str
    sex: Literal["female", "male"]
    birth_date: str
    age: int
    race: str
    phone: str
    address: dict[str, str]
    smoker: bool
    comorbidities: list[str]  # known by the index date: what a reader's comorbidity flags must say
    label: int  # a target diagnosis known by the index date
    signals: dict[str, float]
    consent: Literal["permit", "deny", "inactive", "none"]
    refuted_target: bool
    nodule_mm: float
    imaging: Literal["series", "none", "truncated"]
    imaging_files: list[str]  # the usable CT series, relative to the site folder
    accession: str | None
    sample_id: str | None  # genomics sample, None when the patient has none
    late_comorbidities: list[str] = field(default_factory=list)
    """Comorbidity codes diagnosed only after the index date (some back-dated): they do not count."""
    late_target: bool = False
    """A negative whose target diagnosis was recorded after the index date: the label stays 0."""

    def identifiers(self) -> list[str]:
        """Every string that identifies this patient and must never leave the site."""
        values = [
            self.mrn,
            self.record_id,
            self.given,
            self.family,
            self.birth_date,
            self.birth_date.replace("-", ""),
            self.phone,
            *self.address.values(),
            self.accession or "",
            self.sample_id or "",
        ]
        return [v for v in values if v]

    def uses_data(self, policy: Literal["opt-in", "opt-out"]) -> bool:
        """The generator's intent: an active permit or deny decides; an inactive or missing Consent
        leaves it to the site policy (opt-out sites use the data, opt-in sites do not)."""
        if self.consent in ("permit", "deny"):
            return self.consent == "permit"
        return policy == "opt-out"


@dataclass(frozen=True)
class SiteTruth:
    id: str
    profile: str
    consent_policy: Literal["opt-in", "opt-out"]
    fhir_release: Literal["R4", "R5"]
    prevalence: float
    patients: list[PatientTruth]
    bad_files: list[BadFile]
    genomics: dict[str, object] | None  # file, quirks (missing genes, NaN cells, duplicate sample, ...)

    def patient(self, mrn: str) -> PatientTruth:
        for p in self.patients:
            if p.mrn == mrn:
                return p
        raise KeyError(f"no patient with that MRN at {self.id}")


@dataclass(frozen=True)
class GroundTruth:
    seed: int
    index_date: str
    sites: list[SiteTruth] = field(default_factory=list)

    def site(self, site_id: str) -> SiteTruth:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(f"no site {site_id!r}; sites: {', '.join(s.id for s in self.sites)}")

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        data = json.loads(path.read_text(encoding="utf-8"))
        sites = [
            SiteTruth(
                **{
                    **s,
                    "patients": [PatientTruth(**p) for p in s["patients"]],
                    "bad_files": [BadFile(**b) for b in s["bad_files"]],
                }
            )
            for s in data["sites"]
        ]
        return cls(seed=data["seed"], index_date=data["index_date"], sites=sites)
