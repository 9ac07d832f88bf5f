"""The signed, hash-chained audit trail of a site (``STATE/audit.db``) or of the coordinator.

The coordinator keeps its own in ``OUT/coordinator/audit.db`` with keys in ``OUT/coordinator/keys``.

Append-only three times over: SQLite triggers refuse UPDATE and DELETE (a mistake cannot be "fixed"
quietly), every entry hashes its predecessor (a removed or edited entry breaks the chain) and every
entry is signed with the Ed25519 key in ``STATE/keys`` (re-hashing after an edit needs the key). Each
append is one ``BEGIN IMMEDIATE`` transaction that reads the head and writes the next entry, so two
processes appending at once queue up instead of forking the chain; WAL lets auditors read meanwhile.

The key is a 32-byte Ed25519 seed created by ``privacy.keys.load_or_create_secret`` (mode 0600, folder
0700, created once, loose permissions refused). Its public half is stored in the database's ``meta``
table and exported as ``STATE/keys/audit-ed25519.pub`` so an auditor can verify with it alone, or, better,
pin the copy handed over when the site joined: a trail re-signed with a new key then fails.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import tempfile
from collections.abc import Mapping
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from compliance.audit_chain import (
    AUDIT_FILE,
    FORMAT,
    GENESIS_HASH,
    SCHEMA,
    AuditUnreadable,
    ChainHead,
    Entry,
    entry_hash,
    fingerprint,
    public_pem,
    read_trail,
)
from compliance.audit_events import canonical_details, check_actor
from privacy.durable import immediate_transaction
from privacy.keys import keys_dir, load_or_create_secret, secret_path

SIGNING_KEY = "audit-ed25519"
"""``STATE/keys/audit-ed25519.key`` (private seed) and ``STATE/keys/audit-ed25519.pub`` (PEM)."""


class AuditKeyError(RuntimeError):
    """The signing key at hand is not the key the trail was started with; nothing was written."""


def public_key_path(state: Path) -> Path:
    return Path(state) / "keys" / f"{SIGNING_KEY}.pub"


def load_signing_key(state: Path) -> Ed25519PrivateKey:
    """The site's audit signing key, created on first use; its public PEM is (re)written beside it."""
    key = Ed25519PrivateKey.from_private_bytes(load_or_create_secret(state, SIGNING_KEY))
    _write_public(keys_dir(Path(state)) / f"{SIGNING_KEY}.pub", public_pem(key.public_key()))
    return key


def _write_public(path: Path, pem: str) -> None:
    """Write the PEM atomically, only when it differs, so readers never see half a key."""
    if path.is_file() and path.read_text() == pem:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as fh:
        fh.write(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class AuditTrail:
    """Appends signed entries to one trail; ``actor`` (a code) is recorded with every entry by default."""

    def __init__(self, path: Path, key: Ed25519PrivateKey, actor: str) -> None:
        self.path = Path(path)
        self.actor = check_actor(actor)
        self._key = key
        self.public_key: Ed25519PublicKey = key.public_key()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")
            with self._transaction() as db:
                self._start(db)
        except sqlite3.DatabaseError as exc:
            raise AuditUnreadable(f"{self.path}: not a usable audit trail ({exc}); keep the file for the "
                               "investigation, restore it from a backup, or start a new STATE") from exc

    @classmethod
    def for_state(cls, state: Path, actor: str) -> AuditTrail:
        """The trail ``STATE/audit.db`` signed with ``STATE/keys/audit-ed25519.key``.

        An existing trail whose key file is gone is refused before a new key is made: a new key
        could never continue it, and the original key must be restored from backup.
        """
        state = Path(state)
        key_file = secret_path(state, SIGNING_KEY)
        if (state / AUDIT_FILE).is_file() and not key_file.exists():
            raise AuditKeyError(f"{state / AUDIT_FILE} exists but its signing key {key_file} is missing; "
                                "restore the key from backup (a new key cannot continue the trail)")
        return cls(state / AUDIT_FILE, load_signing_key(state), actor)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self.path)

    def _start(self, db: sqlite3.Connection) -> None:
        """First open: store the public key and sign a ``trail.created`` entry; later: check the key."""
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        mine = fingerprint(self.public_key)
        if not meta:
            db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                           [("format", FORMAT), ("public_key", public_pem(self.public_key)),
                            ("key_fingerprint", mine)])
            self._insert(db, "trail.created", {"key": mine}, self.actor)
        elif meta.get("key_fingerprint") != mine:
            raise AuditKeyError(f"{self.path} was started with signing key {meta.get('key_fingerprint')}, "
                                f"but the key at hand is {mine}; restore the trail's key (STATE/keys/"
                                f"{SIGNING_KEY}.key) or start a new STATE")

    def _insert(self, db: sqlite3.Connection, event: str, details: Mapping[str, Any], actor: str) -> Entry:
        text = canonical_details(event, details)
        last = db.execute("SELECT sequence, hash FROM entries ORDER BY rowid DESC LIMIT 1").fetchone()
        sequence, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        time = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        digest = entry_hash(sequence, time, actor, event, text, prev)
        signature = self._key.sign(bytes.fromhex(digest)).hex()
        entry = Entry(sequence, time, actor, event, text, prev, digest, signature)
        db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (entry.sequence, entry.time, entry.actor, entry.event, entry.details, entry.prev_hash,
                    entry.hash, entry.signature))
        return entry

    def append(self, event: str, details: Mapping[str, Any], *, actor: str | None = None) -> Entry:
        """Sign and append one entry; AuditDetailsError (nothing written) if the details are not allowed."""
        who = self.actor if actor is None else check_actor(actor)
        with self._transaction() as db:
            return self._insert(db, event, details, who)

    def head(self) -> ChainHead:
        """The newest entry's (sequence, hash): what a site sends the coordinator each round."""
        with closing(sqlite3.connect(self.path, timeout=60)) as db:
            sequence, digest = db.execute("SELECT sequence, hash FROM entries ORDER BY rowid DESC LIMIT 1"
                                          ).fetchone()
        return ChainHead(sequence, digest)

    def anchor(self, site_id: str, head: ChainHead, round: int | None = None) -> Entry:
        """Coordinator side: record a site's head, so the site can never rewrite what came before it."""
        details: dict[str, Any] = {"site": site_id, "sequence": head.sequence, "hash": head.hash}
        return self.append("anchor", details if round is None else {**details, "round": round})

    def record_anchor(self, coordinator_head: ChainHead, round: int | None = None) -> Entry:
        """Site side: record the coordinator's head received this round (``anchor.received``)."""
        details: dict[str, Any] = {"sequence": coordinator_head.sequence, "hash": coordinator_head.hash}
        return self.append("anchor.received", details if round is None else {**details, "round": round})

    def entries(self) -> list[Entry]:
        """Every entry, oldest first (as stored; use ``verify`` to know whether to trust them)."""
        return read_trail(self.path)[1]
