import sqlite3
import subprocess
import sys
import textwrap
from multiprocessing import Pool
from pathlib import Path

import pytest
from opacus.accountants import create_accountant

from privacy.ledger import BudgetExceeded, LedgerError, MechanismMismatch, PrivacyLedger

REPO = Path(__file__).resolve().parents[2]
DELTA = 1e-5


def _record(ledger, run_id, round, sigma=1.0, rate=0.1, steps=10, budget=100.0):
    return ledger.record(run_id=run_id, round=round, noise_multiplier=sigma, sample_rate=rate, steps=steps,
                         budget_epsilon=budget, delta=DELTA)


def _direct(mechanism, entries):
    """An Opacus accountant stepped one optimizer step at a time, as PrivacyEngine would."""
    accountant = create_accountant(mechanism)
    for sigma, rate, steps in entries:
        for _ in range(steps):
            accountant.step(noise_multiplier=sigma, sample_rate=rate)
    return accountant


def test_spends_written_by_one_process_are_read_by_another(tmp_path):
    path = tmp_path / "state" / "ledger.db"
    writer = textwrap.dedent(f"""
        from pathlib import Path
        from privacy.ledger import PrivacyLedger
        ledger = PrivacyLedger(Path({str(path)!r}), "rdp")
        for round in (1, 2):
            ledger.record(run_id="run-a", round=round, noise_multiplier=1.1, sample_rate=0.05, steps=40,
                          budget_epsilon=8.0, delta={DELTA})
    """)
    subprocess.run([sys.executable, "-c", writer], cwd=REPO, check=True, capture_output=True)
    ledger = PrivacyLedger.for_state(path.parent)  # another process: nothing but the file is shared
    spends = ledger.spends()
    assert [(s.run_id, s.round, s.steps, s.mechanism) for s in spends] == [("run-a", 1, 40, "rdp"),
                                                                            ("run-a", 2, 40, "rdp")]
    expected = _direct("rdp", [(1.1, 0.05, 80)]).get_epsilon(DELTA)
    assert ledger.spent(DELTA) == pytest.approx(expected, rel=1e-12)
    assert spends[-1].epsilon_after == pytest.approx(expected, rel=1e-12)
    assert ledger.remaining(8.0, DELTA) == pytest.approx(8.0 - expected)


@pytest.mark.parametrize("mechanism", ["prv", "rdp"])
def test_restored_history_gives_the_epsilon_of_direct_stepping(tmp_path, mechanism):
    ledger = PrivacyLedger(tmp_path / "ledger.db", mechanism)
    entries = [(1.0, 0.1, 10), (1.0, 0.1, 10), (0.8, 0.05, 30)]  # two runs; rounds 1-2 merge like step()
    for i, (sigma, rate, steps) in enumerate(entries):
        _record(ledger, "run-a" if i < 2 else "run-b", i, sigma, rate, steps)
    direct = _direct(mechanism, entries)
    restored = ledger.accountant()
    assert restored.mechanism() == mechanism
    assert restored.history == direct.history
    assert ledger.spent(DELTA) == direct.get_epsilon(DELTA)


def test_budgets_add_up_across_runs(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.db", "rdp")
    _record(ledger, "run-a", 1, steps=50)
    first = ledger.spent(DELTA)
    _record(ledger, "run-b", 1, steps=50)  # a new run starts from the ledger, not from zero
    assert ledger.spent(DELTA) == pytest.approx(_direct("rdp", [(1.0, 0.1, 100)]).get_epsilon(DELTA))
    assert ledger.spent(DELTA) > first * 1.2


def test_refuses_when_the_next_round_would_overspend_and_says_so(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.db", "rdp")
    spent = _record(ledger, "run-a", 1, steps=40).epsilon_after
    budget = round(spent * 1.2, 2)
    with pytest.raises(BudgetExceeded) as raised:
        ledger.check_next(1.0, 0.1, 100, budget, DELTA)
    error = raised.value
    assert error.spent == pytest.approx(spent) and spent + error.cost > budget
    message = str(error)
    assert f"{spent:.3f} of {budget:g} is spent" in message and f"would cost {error.cost:.3f} more" in message
    assert "will not train" in message and "site.toml" in message
    with pytest.raises(BudgetExceeded):
        _record(ledger, "run-a", 2, steps=100, budget=budget)
    assert len(ledger.spends()) == 1
    assert spent < ledger.check_next(1.0, 0.1, 1, budget, DELTA) <= budget  # a smaller round still fits


def test_a_history_of_another_mechanism_is_refused(tmp_path):
    _record(PrivacyLedger(tmp_path / "ledger.db", "rdp"), "run-a", 1)
    other = PrivacyLedger(tmp_path / "ledger.db", "prv")
    with pytest.raises(MechanismMismatch, match="'rdp' accountant") as raised:
        other.accountant()
    assert 'accountant = "rdp"' in str(raised.value)
    with pytest.raises(MechanismMismatch):
        _record(other, "run-b", 1)
    assert len(other.spends()) == 1


def test_spends_cannot_be_changed_or_deleted(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.db", "rdp")
    _record(ledger, "run-a", 1)
    with sqlite3.connect(ledger.path) as db:
        for statement in ("UPDATE spends SET steps = 1", "DELETE FROM spends"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert ledger.spends()[0].steps == 10


def _append_many(args):
    path, worker = args
    ledger = PrivacyLedger(Path(path), "rdp")
    for round in range(5):
        _record(ledger, f"run-{worker}", round, steps=5)


def test_concurrent_appends_are_serialised(tmp_path):
    path = tmp_path / "ledger.db"
    PrivacyLedger(path, "rdp")
    with Pool(3) as pool:
        pool.map(_append_many, [(str(path), worker) for worker in range(3)])
    ledger = PrivacyLedger(path, "rdp")
    spends = ledger.spends()
    assert len(spends) == 15
    assert {(s.run_id, s.round) for s in spends} == {(f"run-{w}", r) for w in range(3) for r in range(5)}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # each spend was priced on everything committed before it: no two writers saw the same history
    for k in (1, 8, 15):
        expected = _direct("rdp", [(1.0, 0.1, 5 * k)]).get_epsilon(DELTA)
        assert spends[k - 1].epsilon_after == pytest.approx(expected)


def test_a_damaged_ledger_is_named_not_replaced(tmp_path):
    path = tmp_path / "ledger.db"
    path.write_bytes(b"not a database, " * 256)
    with pytest.raises(LedgerError, match="never delete it"):
        PrivacyLedger(path)
    assert path.read_bytes().startswith(b"not a database")
