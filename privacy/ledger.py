"""The privacy-budget ledger: every spend of a site, on disk in ``STATE/ledger.db``, forever.

Opacus keeps an accountant's whole state in ``state_dict()`` = ``{"history", "mechanism"}`` and refuses to
load a history of another mechanism. The ledger is that state made durable and append-only: one row per
trained round, across rounds *and* runs, so a restart, a new run or a second process can never start from
a fresh accountant. SQLite in WAL mode lets readers (reports, the CLI) look while a round is recorded;
each record is one ``BEGIN IMMEDIATE`` transaction that re-reads the history, so two writers cannot both
spend the last of a budget. Triggers refuse UPDATE and DELETE: a spend cannot be taken back.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opacus.accountants import IAccountant

from privacy.accounting import Entry, append_entry, epsilon_of, epsilon_spent, restore_accountant
from privacy.durable import immediate_transaction

LEDGER_FILE = "ledger.db"
DEFAULT_MECHANISM = "prv"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL CHECK (length(run_id) > 0),
    round INTEGER NOT NULL CHECK (round >= 0),
    noise_multiplier REAL NOT NULL CHECK (noise_multiplier > 0),
    sample_rate REAL NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1),
    steps INTEGER NOT NULL CHECK (steps > 0),
    mechanism TEXT NOT NULL,
    delta REAL NOT NULL CHECK (delta > 0 AND delta < 1),
    epsilon_after REAL NOT NULL CHECK (epsilon_after >= 0),
    created_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS spends_no_update BEFORE UPDATE ON spends
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS spends_no_delete BEFORE DELETE ON spends
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
"""
_COLUMNS = "run_id, round, noise_multiplier, sample_rate, steps, mechanism, delta, epsilon_after, created_at"


@dataclass(frozen=True)
class Spend:
    run_id: str
    round: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    mechanism: str
    delta: float
    epsilon_after: float
    """Epsilon of the whole ledger after this spend, at this spend's delta."""
    created_at: str


class LedgerError(RuntimeError):
    """The ledger cannot be used as asked; the message names the ledger and what to do."""


class MechanismMismatch(LedgerError):
    """The history was recorded with another accountant, whose epsilon this one cannot continue."""


class BudgetExceeded(LedgerError):
    """The next round would spend more than the site's budget: nothing is recorded and no weights leave."""

    def __init__(self, path: Path, spent: float, after: float, budget_epsilon: float, delta: float,
                 entry: Entry) -> None:
        sigma, rate, steps = entry
        super().__init__(
            f"privacy budget would be exceeded ({path}): epsilon {spent:.3f} of {budget_epsilon:g} is spent "
            f"(delta {delta:g}); the next round ({steps} steps, noise multiplier {sigma:.3f}, sample rate "
            f"{rate:.3g}) would cost {after - spent:.3f} more, reaching {after:.3f}. The site will not "
            "train: plan fewer [dp] rounds or local-epochs, or ask the data protection officer for a larger "
            "[privacy] epsilon in site.toml (spends already recorded are never forgotten)"
        )
        self.spent, self.cost, self.budget_epsilon, self.delta = spent, after - spent, budget_epsilon, delta


class PrivacyLedger:
    """Append-only record of a site's privacy spends; ``mechanism`` None means whatever was recorded."""

    def __init__(self, path: Path, mechanism: str | None = None) -> None:
        self.path = Path(path)
        self._mechanism = mechanism
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")  # persistent: later connections read alongside writes
                db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"{self.path}: not a readable privacy ledger ({exc}); restore it from a backup and never "
                "delete it: a new ledger would forget the budget already spent") from exc

    @classmethod
    def for_state(cls, state: Path, mechanism: str | None = None) -> PrivacyLedger:
        """The site's ledger, ``STATE/ledger.db``."""
        return cls(Path(state) / LEDGER_FILE, mechanism)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self.path)

    def _read(self, db: sqlite3.Connection, run_id: str | None = None) -> list[Spend]:
        where, args = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        rows = db.execute(f"SELECT {_COLUMNS} FROM spends {where} ORDER BY id", args).fetchall()
        return [Spend(*row) for row in rows]

    def spends(self, run_id: str | None = None) -> list[Spend]:
        """Every recorded spend, oldest first; only one run's with ``run_id``."""
        with closing(sqlite3.connect(self.path, timeout=60)) as db:
            return self._read(db, run_id)

    def _state(self, spends: list[Spend]) -> dict[str, Any]:
        recorded = {s.mechanism for s in spends}
        if len(recorded) > 1:
            raise LedgerError(f"{self.path}: spends recorded with several accountants {sorted(recorded)}; "
                              "the ledger is damaged, keep it for the audit and investigate")
        history: list[Entry] = []
        for s in spends:
            history = append_entry(history, (s.noise_multiplier, s.sample_rate, s.steps))
        mechanism = recorded.pop() if recorded else self._mechanism or DEFAULT_MECHANISM
        return {"history": history, "mechanism": mechanism}

    def state_dict(self) -> dict[str, Any]:
        """The accountant state the ledger holds, in Opacus's ``IAccountant.state_dict()`` form."""
        return self._state(self.spends())

    def _restore(self, state: dict[str, Any]) -> IAccountant:
        mechanism = self._mechanism or state["mechanism"]
        try:
            return restore_accountant(state, mechanism)
        except ValueError as exc:
            recorded = state["mechanism"]
            raise MechanismMismatch(
                f"{self.path}: the spends were recorded with the {recorded!r} accountant and cannot be "
                f"continued with {mechanism!r}; set [dp] accountant = \"{recorded}\" in the study"
            ) from exc

    def accountant(self) -> IAccountant:
        """An Opacus accountant holding the ledger's whole history (refusing a foreign mechanism)."""
        return self._restore(self.state_dict())

    def spent(self, delta: float) -> float:
        return epsilon_spent(self.accountant(), delta)

    def remaining(self, budget_epsilon: float, delta: float) -> float:
        return max(budget_epsilon - self.spent(delta), 0.0)

    def _after(self, state: dict[str, Any], entry: Entry, budget_epsilon: float, delta: float) -> float:
        """Epsilon once ``entry`` is spent; BudgetExceeded when that is over ``budget_epsilon``."""
        accountant = self._restore(state)
        after = epsilon_of(append_entry(accountant.history, entry), accountant.mechanism(), delta)
        if after > budget_epsilon:
            spent = epsilon_spent(accountant, delta)
            raise BudgetExceeded(self.path, spent, after, budget_epsilon, delta, entry)
        return after

    def check_next(self, noise_multiplier: float, sample_rate: float, steps: int,
                   budget_epsilon: float, delta: float) -> float:
        """The epsilon after a round of ``steps`` steps, or BudgetExceeded; records nothing."""
        return self._after(self.state_dict(), (noise_multiplier, sample_rate, steps), budget_epsilon, delta)

    def record(self, *, run_id: str, round: int, noise_multiplier: float, sample_rate: float, steps: int,
               budget_epsilon: float, delta: float) -> Spend:
        """Append one round's spend, checked against the budget inside the same write transaction."""
        entry = (float(noise_multiplier), float(sample_rate), int(steps))
        with self._transaction() as db:
            state = self._state(self._read(db))
            after = self._after(state, entry, budget_epsilon, delta)
            spend = Spend(run_id=run_id, round=round, noise_multiplier=entry[0], sample_rate=entry[1],
                          steps=entry[2], mechanism=state["mechanism"], delta=delta, epsilon_after=after,
                          created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
            db.execute(f"INSERT INTO spends ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (spend.run_id, spend.round, spend.noise_multiplier, spend.sample_rate, spend.steps,
                        spend.mechanism, spend.delta, spend.epsilon_after, spend.created_at))
        return spend
