"""The one way Polyclinic's append-only SQLite stores (ledger, audit trail, GDPR register) write.

One connection per operation, so threads and processes can share a file; ``BEGIN IMMEDIATE`` so two
writers that each re-read before appending can never both act on the same state; ``synchronous=FULL`` so a
committed row (a privacy spend, an audit entry, an erasure) survives a power cut.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path


@contextmanager
def immediate_transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection inside one IMMEDIATE transaction: committed on success, rolled back on any error."""
    with closing(sqlite3.connect(path, timeout=60, isolation_level=None)) as db:
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
