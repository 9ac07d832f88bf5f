"""One audit entry and how it is chained: the canonical bytes, the SHA-256 hash, the Ed25519 signature.

Shared by the writer (``compliance/audit.py``) and the verifier (``compliance/audit_verify.py``) so both
hash exactly the same bytes. An entry's hash is SHA-256 of the compact JSON array
``["polyclinic-audit/1", sequence, time, actor, event, details, prev_hash]`` (``details`` as its stored
JSON text, ASCII only), so any changed byte of any field changes the hash; the hash includes the
previous entry's hash, so an entry cannot be changed, removed or moved without breaking every later
link; the signature over the 32 hash bytes says which key wrote it, so re-hashing after a change is
not enough, the attacker needs the key. An auditor can recompute all of it from the docs alone.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "polyclinic-audit/1"
AUDIT_FILE = "audit.db"
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first entry."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    sequence INTEGER NOT NULL UNIQUE,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""
COLUMNS = ("sequence", "time", "actor", "event", "details", "prev_hash", "hash", "signature")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AuditUnreadable(RuntimeError):
    """There is no audit trail to read at the path (missing, not SQLite, or not an audit database)."""


@dataclass(frozen=True)
class ChainHead:
    """The newest entry of a trail: what a site sends each round and the coordinator anchors."""

    sequence: int
    hash: str

    def __post_init__(self) -> None:
        if not (isinstance(self.sequence, int) and self.sequence >= 1
                and isinstance(self.hash, str) and _HEX64.fullmatch(self.hash)):
            raise ValueError(f"not an audit chain head: sequence {self.sequence!r}, hash {self.hash!r} "
                             "(expected a sequence >= 1 and 64 lowercase hex digits)")

    def as_dict(self) -> dict[str, int | str]:
        return {"sequence": self.sequence, "hash": self.hash}


@dataclass(frozen=True)
class Entry:
    """One row of ``entries`` as stored (values are whatever the file holds, checked by the verifier)."""

    sequence: int
    time: str
    actor: str
    event: str
    details: str
    prev_hash: str
    hash: str
    signature: str

    def details_dict(self) -> dict[str, Any]:
        return json.loads(self.details)

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.sequence, self.hash)


def entry_hash(sequence: Any, time: Any, actor: Any, event: Any, details: Any, prev_hash: Any) -> str:
    """SHA-256 (hex) of the entry's canonical encoding."""
    fields = [FORMAT, sequence, time, actor, event, details, prev_hash]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()).hexdigest()


def recomputed_hash(entry: Entry) -> str:
    return entry_hash(entry.sequence, entry.time, entry.actor, entry.event, entry.details, entry.prev_hash)


def public_pem(key: Ed25519PublicKey) -> str:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_bytes(serialization.Encoding.PEM, spki).decode()


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key: how docs, results and the first entry name a key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def read_trail(path: Path) -> tuple[dict[str, str], list[Entry]]:
    """The meta table and every entry in storage (append) order, read-only; AuditUnreadable if none."""
    path = Path(path)
    if not path.is_file():
        raise AuditUnreadable(f"{path}: no audit trail there (give STATE or an audit .db file)")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)) as db:
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY rowid").fetchall()
    except sqlite3.DatabaseError as exc:
        raise AuditUnreadable(f"{path}: not a readable audit trail ({exc}); keep the file for the "
                              "investigation and restore the trail from a backup") from exc
    return meta, [Entry(*row) for row in rows]
