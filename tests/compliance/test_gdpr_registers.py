"""The GDPR register in STATE/gdpr.db: append-only, pseudonyms only, durable across processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compliance.gdpr import GDPR_FILE, GdprRegisterError, RequestRegister, UsageRegister, erased

REPO = Path(__file__).resolve().parents[2]
ALICE, BOB = "p-" + "a" * 24, "p-" + "0123456789abcdef01234567"


def test_an_erasure_survives_a_restart_and_another_process(tmp_path):
    writer = textwrap.dedent(f"""
        from pathlib import Path
        from compliance.gdpr import RequestRegister
        RequestRegister.for_state(Path({str(tmp_path)!r})).record("erasure", {ALICE!r})
    """)
    subprocess.run([sys.executable, "-c", writer], cwd=REPO, check=True, capture_output=True)
    assert erased(tmp_path) == {ALICE}
    register = RequestRegister.for_state(tmp_path)
    register.record("access", BOB)
    register.record("erasure", ALICE)  # a second request is logged; the first one still dates the erasure
    first = register.erasure_of(ALICE)
    assert first is not None and [r.kind for r in register.requests(ALICE)] == ["erasure", "erasure"]
    assert first.created_at == register.requests(ALICE)[0].created_at
    assert register.erasure_of(BOB) is None and erased(tmp_path) == {ALICE}


@pytest.mark.parametrize("sql", ["UPDATE requests SET kind = 'access'", "DELETE FROM requests",
                                 "UPDATE usage SET round = 9", "DELETE FROM usage"])
def test_nothing_can_be_changed_or_deleted(tmp_path, sql):
    RequestRegister.for_state(tmp_path).record("erasure", ALICE)
    UsageRegister.for_state(tmp_path).record("run-a", 1, [ALICE])
    with sqlite3.connect(tmp_path / GDPR_FILE) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)
    assert erased(tmp_path) == {ALICE}
    assert [(r, n) for r, n, _ in UsageRegister.for_state(tmp_path).rounds_for(ALICE)] == [("run-a", 1)]


def test_raw_identifiers_are_refused_by_the_code_and_by_the_database(tmp_path):
    register = RequestRegister.for_state(tmp_path)
    for raw in ("MRN5077573", "p-" + "A" * 24, "p-" + "a" * 23):
        with pytest.raises(ValueError, match="never a raw identifier"):
            register.record("erasure", raw)
        with pytest.raises(ValueError, match="never a raw identifier"):
            UsageRegister.for_state(tmp_path).record("run-a", 1, [ALICE, raw])
    with sqlite3.connect(tmp_path / GDPR_FILE) as db, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute("INSERT INTO requests (kind, pseudonym, created_at) VALUES ('erasure', 'MRN5077573', 'x')")
    with pytest.raises(ValueError, match="unknown GDPR request kind"):
        register.record("rectification", ALICE)  # type: ignore[arg-type]
    assert register.requests() == [] and UsageRegister.for_state(tmp_path).rounds_for(ALICE) == []


def test_usage_is_recorded_once_per_run_round_and_patient(tmp_path):
    usage = UsageRegister.for_state(tmp_path)
    assert usage.record("run-a", 1, [ALICE, BOB, ALICE]) == 2
    assert usage.record("run-a", 1, [ALICE]) == 0  # a retried round adds nothing
    assert usage.record("run-a", 2, [BOB]) == 1
    assert usage.record("run-b", 0, [ALICE]) == 1
    assert [(r, n) for r, n, _ in usage.rounds_for(ALICE)] == [("run-a", 1), ("run-b", 0)]
    assert [(r, n) for r, n, _ in usage.rounds_for(BOB)] == [("run-a", 1), ("run-a", 2)]
    with pytest.raises(ValueError, match="round >= 0"):
        usage.record("run-a", -1, [ALICE])


def test_reading_erasures_of_a_fresh_state_writes_nothing(tmp_path):
    assert erased(tmp_path / "state") == frozenset()
    assert not (tmp_path / "state").exists()


def test_a_damaged_register_is_refused_with_what_to_do(tmp_path):
    (tmp_path / GDPR_FILE).write_bytes(b"not a database at all, but long enough to be read as a header" * 4)
    with pytest.raises(GdprRegisterError, match="never delete it"):
        RequestRegister.for_state(tmp_path)
