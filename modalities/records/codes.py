"""Study codes (``system|code`` tokens) and how they match codings found in records.

ICD-10 is hierarchical by category: a study naming ``C34`` (malignant neoplasm of bronchus and lung)
means every ``C34.x`` too, and exports write the subcode with or without the dot. SNOMED CT and other
systems are matched exactly: their hierarchies cannot be read from the code text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ICD10_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm"})
LOINC = "http://loinc.org"


def _icd10_key(code: str) -> str:
    return code.replace(".", "").strip().upper()


@dataclass(frozen=True)
class CodeToken:
    system: str
    code: str

    @classmethod
    def parse(cls, token: str, setting: str) -> CodeToken:
        """``system|code``; anything else is a configuration error naming the setting and an example."""
        system, sep, code = token.partition("|")
        if not sep or not system.strip() or not code.strip():
            raise ValueError(
                f"records.{setting}: {token!r} is not a 'system|code' token, "
                "e.g. 'http://hl7.org/fhir/sid/icd-10|C34' or 'http://snomed.info/sct|363358000'"
            )
        return cls(system.strip(), code.strip())

    def matches(self, coding: Any) -> bool:
        """Whether a fhir.resources Coding is this code (or, for ICD-10, within this category)."""
        if coding.system != self.system or not coding.code:
            return False
        if self.system in ICD10_SYSTEMS:
            return _icd10_key(coding.code).startswith(_icd10_key(self.code))
        return coding.code == self.code

    def __str__(self) -> str:
        return f"{self.system}|{self.code}"


def parse_tokens(tokens: Iterable[str], setting: str) -> tuple[CodeToken, ...]:
    return tuple(CodeToken.parse(token, setting) for token in tokens)


def concept_matches(concept: Any, tokens: Iterable[CodeToken]) -> bool:
    """Whether any coding of a CodeableConcept matches any token."""
    codings = concept.coding if concept is not None and concept.coding else []
    return any(token.matches(coding) for token in tokens for coding in codings)


def concept_codes(concept: Any) -> set[str]:
    """The bare codes of a CodeableConcept (status value sets are matched by code alone)."""
    return {c.code for c in (concept.coding or []) if c.code} if concept is not None else set()
