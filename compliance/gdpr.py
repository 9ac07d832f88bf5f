"""The GDPR registers of a site, ``STATE/gdpr.db``: data-subject requests and which rounds used whom.

Two append-only tables, pseudonyms only (a raw identifier never reaches this file):

* ``requests``: every Art. 15 access and Art. 17 erasure request, with its time. An erasure must hold
  for as long as the site processes data, including data of that patient that arrives later, so the
  register is the suppression list :meth:`Site.run <client.site.Site.run>` reads before any image is
  decoded. Keeping the pseudonym for that purpose is what Art. 17(3) allows and what makes the
  erasure durable; the pseudonym is useless without the site key.
* ``usage``: one row per (run, round, pseudonym) that a round trained on. Art. 15 asks which
  processing used a patient, and the residual influence of an erased patient is the privacy spent in
  exactly those rounds (:mod:`compliance.gdpr_bound`).

As in ``privacy/ledger.py``, triggers refuse UPDATE and DELETE (a request cannot be withdrawn quietly,
an erasure cannot be undone), every write is one ``BEGIN IMMEDIATE`` transaction and WAL lets the site
read while the CLI records.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from compliance.audit_events import KINDS
from privacy.durable import immediate_transaction

GDPR_FILE = "gdpr.db"
ERASED = "gdpr.erased"
"""The exclusion code a site run counts an erased patient under."""

RequestKind = Literal["access", "erasure"]
REQUEST_KINDS: tuple[str, ...] = ("access", "erasure")

_PSEUDONYM_CHECK = ("length({0}) = 26 AND substr({0}, 1, 2) = 'p-' "
                    "AND substr({0}, 3) NOT GLOB '*[^0-9a-f]*'")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'erasure')),
    pseudonym TEXT NOT NULL CHECK ({_PSEUDONYM_CHECK.format("pseudonym")}),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_pseudonym ON requests (pseudonym);
CREATE TABLE IF NOT EXISTS usage (
    run_id TEXT NOT NULL CHECK (length(run_id) > 0),
    round INTEGER NOT NULL CHECK (round >= 0),
    pseudonym TEXT NOT NULL CHECK ({_PSEUDONYM_CHECK.format("pseudonym")}),
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, round, pseudonym)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_by_pseudonym ON usage (pseudonym);
"""
_TRIGGERS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
    "BEGIN SELECT RAISE(ABORT, 'the GDPR register is append-only'); END;\n"
    for table in ("requests", "usage") for verb in ("UPDATE", "DELETE"))


class GdprRegisterError(RuntimeError):
    """The register cannot be used as asked; the message names the file and what to do."""


@dataclass(frozen=True)
class Request:
    kind: str
    pseudonym: str
    created_at: str


def check_pseudonym(pseudonym: str) -> str:
    """A patient pseudonym (``p-`` + 24 hex digits); a raw identifier is refused before it is stored."""
    if not KINDS["pseudonym"][0](pseudonym):
        raise ValueError("the GDPR register takes a patient pseudonym ('p-' + 24 hex digits), never a raw "
                         "identifier: pseudonymise it with the site's Pseudonymiser first")
    return pseudonym


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class _Register:
    """One connection per operation on ``STATE/gdpr.db``, created with its schema on first use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} {_TRIGGERS} COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise GdprRegisterError(
                f"{self.path}: not a readable GDPR register ({exc}); restore it from a backup and never "
                "delete it: a new register would forget every erasure, and erased patients would be "
                "used again") from exc

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self.path)

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path, timeout=60)) as db:
            return db.execute(sql, args).fetchall()


class RequestRegister(_Register):
    """Art. 15 and Art. 17 requests, oldest first; the erased pseudonyms are read from here."""

    @classmethod
    def for_state(cls, state: Path) -> RequestRegister:
        return cls(Path(state) / GDPR_FILE)

    def record(self, kind: RequestKind, pseudonym: str) -> Request:
        if kind not in REQUEST_KINDS:
            raise ValueError(f"unknown GDPR request kind {kind!r}; use one of: {', '.join(REQUEST_KINDS)}")
        request = Request(kind, check_pseudonym(pseudonym), _now())
        with self._transaction() as db:
            db.execute("INSERT INTO requests (kind, pseudonym, created_at) VALUES (?, ?, ?)",
                       (request.kind, request.pseudonym, request.created_at))
        return request

    def requests(self, pseudonym: str | None = None) -> list[Request]:
        where, args = ("WHERE pseudonym = ?", (pseudonym,)) if pseudonym is not None else ("", ())
        rows = self._query(f"SELECT kind, pseudonym, created_at FROM requests {where} ORDER BY id", args)
        return [Request(str(k), str(p), str(t)) for k, p, t in rows]

    def erasure_of(self, pseudonym: str) -> Request | None:
        """The patient's first erasure request (from then on they are excluded), or None."""
        return next((r for r in self.requests(pseudonym) if r.kind == "erasure"), None)

    def erased(self) -> frozenset[str]:
        return frozenset(str(p) for (p,) in self._query(
            "SELECT DISTINCT pseudonym FROM requests WHERE kind = 'erasure'"))


def erased(state: Path) -> frozenset[str]:
    """Pseudonyms erased at this site; empty without a register (and, then, nothing is written)."""
    path = Path(state) / GDPR_FILE
    return RequestRegister(path).erased() if path.is_file() else frozenset()


class UsageRegister(_Register):
    """Which runs and rounds trained on which pseudonyms (Art. 15), in ``STATE/gdpr.db``."""

    @classmethod
    def for_state(cls, state: Path) -> UsageRegister:
        return cls(Path(state) / GDPR_FILE)

    def record(self, run_id: str, round: int, pseudonyms: Iterable[str]) -> int:
        """Record that round ``round`` of ``run_id`` trained on ``pseudonyms``; returns the rows added.

        Recording the same (run, round, patient) again adds nothing, so a retried round is harmless.
        """
        if not run_id or round < 0:
            raise ValueError(f"usage needs a run id and a round >= 0, got {run_id!r} and {round}")
        created = _now()
        rows = [(run_id, int(round), check_pseudonym(p), created) for p in sorted(set(pseudonyms))]
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO usage (run_id, round, pseudonym, created_at) "
                           "VALUES (?, ?, ?, ?)", rows)
            return db.total_changes - before

    def rounds_for(self, pseudonym: str) -> list[tuple[str, int, str]]:
        """(run id, round, time recorded) of every round that used ``pseudonym``, oldest first."""
        rows = self._query("SELECT run_id, round, created_at FROM usage WHERE pseudonym = ? "
                           "ORDER BY created_at, run_id, round", (check_pseudonym(pseudonym),))
        return [(str(r), int(n), str(t)) for r, n, t in rows]
