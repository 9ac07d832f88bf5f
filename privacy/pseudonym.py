"""Pseudonyms: keyed HMAC-SHA256 of site identifiers, stable per site and useless without the key.

A plain hash of a medical record number can be reversed by hashing every plausible number; a keyed
HMAC cannot without the site's secret, which never leaves ``STATE/keys``. Different purposes (patient
identifiers, DICOM UIDs, file references) are domain-separated so one value never maps to another's.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from privacy.keys import load_or_create_secret

PATIENT_PREFIX = "p-"
PSEUDONYM_KEY = "pseudonym"
"""The name of the site secret pseudonyms are keyed with: ``STATE/keys/pseudonym.key``."""
UID_ROOT = "2.25."  # ISO/IEC 9834-8 UUID-derived OIDs: valid DICOM UIDs needing no registered root


class Pseudonymiser:
    """Maps raw identifiers to pseudonyms with one site secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a pseudonymisation secret needs at least 16 bytes")
        self._secret = secret

    @classmethod
    def for_state(cls, state: Path) -> Pseudonymiser:
        """The site's pseudonymiser, creating its secret on first use."""
        return cls(load_or_create_secret(state, PSEUDONYM_KEY))

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()

    def patient(self, identifier: str) -> str:
        """``p-`` and 24 hex digits (96 bits): collision-free at any hospital's scale."""
        return PATIENT_PREFIX + self._digest("patient", identifier.strip()).hex()[:24]

    def uid(self, uid: str) -> str:
        """A DICOM UID mapped consistently, so series and studies stay linked after de-identification."""
        return UID_ROOT + str(int.from_bytes(self._digest("uid", uid.strip())[:16], "big"))

    def reference(self, text: str) -> str:
        """A short keyed digest standing in for a file path or resource id in logs and STATE."""
        return self._digest("ref", text).hex()[:12]

    def cache_key(self, pseudonym: str, fingerprint: str, recipe: str) -> str:
        """Name of a patient's cache entry: changes when the input bytes or the feature recipe change.

        The pseudonym is part of it because one input file can hold many patients (a genomics table).
        """
        return self._digest("cache", f"{pseudonym}\0{fingerprint}\0{recipe}").hex()
