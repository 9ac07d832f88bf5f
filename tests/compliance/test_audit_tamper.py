"""An attacker with write access to ``audit.db`` (dropping the triggers first) is always caught.

Every tamper is a raw sqlite3 edit of a real trail file; each test asserts which entry is named first
and why, and the CLI's exit codes for the same files.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compliance.audit import AuditTrail, public_key_path
from compliance.audit_chain import COLUMNS, Entry, entry_hash, fingerprint, public_pem, read_trail
from compliance.audit_verify import check_anchors, load_public_key, verify
from polyclinic import audit_cli

SITE = "hospital-a"


@pytest.fixture
def trails(tmp_path: Path) -> tuple[AuditTrail, AuditTrail]:
    """A site trail of 6 entries whose head (6) the coordinator anchored, and the coordinator's trail."""
    site = AuditTrail.for_state(tmp_path / "site", f"site:{SITE}")
    coordinator = AuditTrail.for_state(tmp_path / "coordinator", "coordinator")
    site.append("data.discovered", {"modality": "imaging", "items": 12, "patients": 10})
    site.append("data.rejected", {"modality": "imaging", "items": 2, "reasons": {"imaging.no-pixels": 2}})
    site.append("consent.decided", {"policy": "opt-out", "decisions": {"consent.denied": 1,
                "consent.not-objected": 9}, "included": 9, "excluded": 1})
    site.append("training.round", {"round": 1, "epsilon": 0.71, "examples": 9, "update": "ab" * 32})
    site.append("model.received", {"round": 1, "model": "cd" * 32})
    coordinator.anchor(SITE, site.head(), round=1)
    site.record_anchor(coordinator.head(), round=1)
    return site, coordinator


@contextmanager
def attacker(db: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection with the append-only triggers dropped, as someone with file access would do."""
    with closing(sqlite3.connect(db)) as con:
        for trigger in ("entries_no_update", "entries_no_delete", "meta_no_update", "meta_no_delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        yield con
        con.commit()


def rewrite(db: Path, entries: list[Entry]) -> None:
    """Replace the stored rows by ``entries``, in this storage order."""
    with attacker(db) as con:
        con.execute("DELETE FROM entries")
        con.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [tuple(getattr(e, c) for c in COLUMNS) for e in entries])


def forge(entries: list[Entry], key: Ed25519PrivateKey) -> list[Entry]:
    """Re-number, re-link, re-hash and re-sign ``entries`` with ``key``: a consistent forged chain."""
    forged: list[Entry] = []
    prev = "0" * 64
    for sequence, e in enumerate(entries, start=1):
        digest = entry_hash(sequence, e.time, e.actor, e.event, e.details, prev)
        forged.append(Entry(sequence, e.time, e.actor, e.event, e.details, prev, digest,
                            key.sign(bytes.fromhex(digest)).hex()))
        prev = digest
    return forged


def flipped(value: str) -> str:
    """``value`` with one character in the middle changed (hex stays hex)."""
    i = len(value) // 2
    return value[:i] + ("1" if value[i] != "1" else "2") + value[i + 1:]


def test_an_untouched_trail_verifies_with_its_pinned_key_and_anchors(trails: tuple[AuditTrail, AuditTrail]):
    site, coordinator = trails
    pinned = load_public_key(public_key_path(site.path.parent))
    result = verify(site.path, pinned)
    assert (result.ok, result.entries, result.key_pinned, result.head) == (True, 7, True, site.head())
    assert result.first_bad is None and result.key_fingerprint == fingerprint(site.public_key)
    assert check_anchors(site.path, coordinator.path, SITE) == []


EXPECTED = {"sequence": "sequence-gap", "time": "hash-mismatch", "actor": "hash-mismatch",
            "event": "hash-mismatch", "details": "hash-mismatch", "prev_hash": "broken-link",
            "hash": "hash-mismatch", "signature": "bad-signature"}


@pytest.mark.parametrize("column", COLUMNS)
def test_a_changed_byte_in_any_column_names_that_entry(trails: tuple[AuditTrail, AuditTrail], column: str):
    site, _ = trails
    with attacker(site.path) as con:
        (value,) = con.execute(f"SELECT {column} FROM entries WHERE sequence = 3").fetchone()
        changed = value + 100 if isinstance(value, int) else flipped(value)
        con.execute(f"UPDATE entries SET {column} = ? WHERE sequence = 3", (changed,))
    result = verify(site.path)
    assert not result.ok
    assert (result.first_bad, result.problem.code, result.entries) == (3, EXPECTED[column], 2)
    assert "entry 3" in result.summary()


def test_a_replaced_public_key_in_meta_fails_the_first_signature(trails: tuple[AuditTrail, AuditTrail]):
    site, _ = trails
    with attacker(site.path) as con:
        con.execute("UPDATE meta SET value = ? WHERE name = 'public_key'",
                    (public_pem(Ed25519PrivateKey.generate().public_key()),))
    result = verify(site.path)
    assert (result.ok, result.first_bad, result.problem.code) == (False, 1, "bad-signature")


def test_a_deleted_row_is_a_gap_at_the_missing_entry(trails: tuple[AuditTrail, AuditTrail]):
    site, _ = trails
    with attacker(site.path) as con:
        con.execute("DELETE FROM entries WHERE sequence = 4")
    result = verify(site.path)
    assert (result.first_bad, result.problem.code) == (4, "sequence-gap")


def test_reordered_rows_are_out_of_order(trails: tuple[AuditTrail, AuditTrail]):
    site, _ = trails
    entries = read_trail(site.path)[1]
    entries[2], entries[3] = entries[3], entries[2]
    rewrite(site.path, entries)
    result = verify(site.path)
    assert (result.first_bad, result.problem.code) == (3, "out-of-order")


def test_an_inserted_row_with_a_valid_hash_and_link_fails_its_signature(
        trails: tuple[AuditTrail, AuditTrail]):
    """The attacker renumbers, re-links and re-hashes everything after it, but lacks the site key."""
    site, _ = trails
    entries = read_trail(site.path)[1]
    forged = forge([*entries[:2], entries[1], *entries[2:]], Ed25519PrivateKey.generate())
    assert [f.hash for f in forged[:2]] == [e.hash for e in entries[:2]]  # hashes do not depend on keys
    rewrite(site.path, [*entries[:2], *forged[2:]])
    result = verify(site.path)
    assert (result.first_bad, result.problem.code) == (3, "bad-signature")


def test_a_row_appended_without_the_key_fails_its_signature(trails: tuple[AuditTrail, AuditTrail]):
    site, _ = trails
    entries = read_trail(site.path)[1]
    extra = forge([*entries, entries[-1]], Ed25519PrivateKey.generate())[-1]
    assert extra.prev_hash == entries[-1].hash  # hashes do not depend on the key: the link is right
    rewrite(site.path, [*entries, extra])
    result = verify(site.path)
    assert (result.first_bad, result.problem.code) == (8, "bad-signature")


def test_a_truncated_tail_is_caught_against_a_known_head_and_the_anchors(
        trails: tuple[AuditTrail, AuditTrail]):
    site, coordinator = trails
    known = site.head()
    with attacker(site.path) as con:
        con.execute("DELETE FROM entries WHERE sequence >= 6")
    alone = verify(site.path)
    assert alone.ok and alone.entries == 5  # a clean cut cannot be seen without outside evidence
    against_head = verify(site.path, anchors=[known])
    assert (against_head.first_bad, against_head.problem.code) == (6, "truncated")
    problems = check_anchors(site.path, coordinator.path, SITE)
    assert [(p.code, p.sequence, p.trail) for p in problems] == [("truncated", 6, str(site.path))]


def test_an_empty_trail_is_truncated(trails: tuple[AuditTrail, AuditTrail]):
    site, _ = trails
    rewrite(site.path, [])
    assert (verify(site.path).first_bad, verify(site.path).problem.code) == (1, "truncated")


def test_a_trail_rewritten_and_resigned_with_a_new_key_is_caught_by_pin_and_anchors(
        trails: tuple[AuditTrail, AuditTrail]):
    site, coordinator = trails
    pinned = load_public_key(public_key_path(site.path.parent))
    entries = read_trail(site.path)[1]
    rejected = entries[2]
    entries[2] = Entry(rejected.sequence, rejected.time, rejected.actor, rejected.event,
                       rejected.details.replace('"items":2', '"items":0'), "", "", "")
    new_key = Ed25519PrivateKey.generate()
    rewrite(site.path, forge(entries, new_key))
    with attacker(site.path) as con:
        for name, value in (("public_key", public_pem(new_key.public_key())),
                            ("key_fingerprint", fingerprint(new_key.public_key()))):
            con.execute("UPDATE meta SET value = ? WHERE name = ?", (value, name))
    self_asserted = verify(site.path)
    assert self_asserted.ok and not self_asserted.key_pinned  # only outside evidence can tell
    assert "self-asserted" in self_asserted.summary()
    pinned_result = verify(site.path, pinned)
    assert (pinned_result.first_bad, pinned_result.problem.code) == (1, "wrong-key")
    problems = check_anchors(site.path, coordinator.path, SITE)
    assert [(p.code, p.sequence) for p in problems] == [("anchor-mismatch", 6)]


def test_a_coordinator_that_rewrote_its_trail_is_caught_by_the_sites_record(
        trails: tuple[AuditTrail, AuditTrail]):
    site, coordinator = trails
    entries = read_trail(coordinator.path)[1]
    key = Ed25519PrivateKey.generate()
    rewrite(coordinator.path, forge(entries[:1], key))  # the anchor is gone, re-signed
    problems = check_anchors(site.path, coordinator.path, SITE)
    codes = [(p.code, p.trail) for p in problems]
    assert ("bad-signature", str(coordinator.path)) in codes
    assert ("unanchored", str(coordinator.path)) in codes


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="polyclinic")
    audit_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return audit_cli.run(parser.parse_args(argv))


def test_cli_verify_exit_codes_and_one_line(trails: tuple[AuditTrail, AuditTrail], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]):
    site, coordinator = trails
    state = site.path.parent
    pub = str(public_key_path(state))
    assert _cli(["audit", "verify", str(state), "--public-key", pub]) == 0
    assert capsys.readouterr().out.startswith("intact: ")
    other = str(public_key_path(coordinator.path.parent))
    assert _cli(["audit", "verify", str(state), "--public-key", other]) == 1
    assert "entry 1: wrong-key" in capsys.readouterr().out
    with attacker(site.path) as con:
        con.execute("UPDATE entries SET details = replace(details, '12', '13') WHERE sequence = 2")
    assert _cli(["audit", "verify", str(site.path), "--json"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out) | {"first_bad": 2, "problem": "hash-mismatch", "ok": False} == json.loads(out)
    assert _cli(["audit", "verify", str(tmp_path / "nowhere")]) == 2
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    assert _cli(["audit", "verify", str(junk)]) == 2
    assert _cli(["audit", "verify", str(state), "--public-key", str(junk)]) == 2
    assert _cli(["audit", "export", str(state), "--fhir", str(tmp_path / "x.ndjson")]) == 1
    assert not (tmp_path / "x.ndjson").exists()
