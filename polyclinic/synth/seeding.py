"""Seeded random streams: every number the generator draws comes from ``(seed, site, purpose)``.

One stream per purpose (population, imaging, records, ...) means that adding a draw to one writer
never shifts the numbers another writer sees, so the same arguments always give byte-identical files
and a change to one modality does not silently reshuffle the others.
"""

from __future__ import annotations

import uuid
import zlib

import numpy as np

FEDERATION = -1
"""Pseudo site index for draws shared by all sites (e.g. the genes' baseline expression)."""


def stream(seed: int, site: int, purpose: str) -> np.random.Generator:
    """An independent generator for one purpose at one site (``site=FEDERATION`` for shared draws)."""
    return np.random.default_rng([seed, site + 1, zlib.crc32(purpose.encode())])


def dicom_uid(rng: np.random.Generator) -> str:
    """A ``2.25.<128-bit integer>`` UID (ISO/IEC 9834-8): valid without a registered root."""
    return f"2.25.{int.from_bytes(rng.bytes(16), 'big') or 1}"


def uuid4(rng: np.random.Generator) -> str:
    """A random (version 4) UUID drawn from ``rng`` instead of the OS entropy pool."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def hex_name(rng: np.random.Generator, digits: int = 16) -> str:
    """A file or folder name that carries no information about its content."""
    return rng.bytes(digits // 2).hex()
