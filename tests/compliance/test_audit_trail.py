"""Writing the trail: keys on disk, what details may say, two writers at once, and the FHIR export."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.auditevent import AuditEvent

from compliance.audit import AuditKeyError, AuditTrail, load_signing_key, public_key_path
from compliance.audit_chain import read_trail
from compliance.audit_events import EVENTS, AuditDetailsError
from compliance.audit_fhir import DETAIL_SYSTEM
from compliance.audit_verify import load_public_key, verify
from polyclinic import audit_cli
from privacy.keys import UntrustedKeyError

PSEUDONYM = "p-" + "0a" * 12
EXAMPLES: dict[str, dict[str, Any]] = {
    "data.discovered": {"modality": "records", "items": 40, "patients": 40},
    "data.accepted": {"modality": "records", "items": 38, "patients": 38},
    "data.rejected": {"modality": "records", "items": 2, "reasons": {"records.no-patient": 2}},
    "consent.decided": {"policy": "opt-in", "decisions": {"consent.permitted": 30, "consent.no-permit": 8},
                        "included": 30, "excluded": 8},
    "consent.withdrawn": {"patients": 1, "round": 2},
    "cache.built": {"patients": 30, "built": 30, "reused": 0, "pruned": 0},
    "training.round": {"round": 1, "epsilon": 0.8, "epsilon_total": 0.8, "delta": 1e-5, "examples": 24,
                       "update": "12" * 32},
    "training.refused": {"round": 6, "reason": "privacy.budget-exceeded"},
    "model.received": {"round": 1, "model": "34" * 32},
    "model.aggregated": {"round": 1, "sites": 3, "examples": 72, "model": "56" * 32},
    "report.generated": {"kind": "auditor", "report": "78" * 32},
    "gdpr.access": {"patient": PSEUDONYM, "items": 3},
    "gdpr.erasure": {"patient": PSEUDONYM, "items": 3},
    "anchor": {"site": "hospital-a", "sequence": 4, "hash": "9a" * 32, "round": 1},
    "anchor.received": {"sequence": 2, "hash": "bc" * 32, "round": 1},
}


def test_every_event_type_has_a_documented_example():
    assert set(EXAMPLES) | {"trail.created"} == set(EVENTS)


def test_keys_are_private_the_public_key_is_exported_and_the_db_is_append_only(tmp_path: Path):
    trail = AuditTrail.for_state(tmp_path, "site:hospital-a")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "audit-ed25519.key").stat().st_mode) == 0o600
    assert load_public_key(public_key_path(tmp_path)) == trail.public_key
    first = trail.entries()[0]
    assert (first.sequence, first.event, first.prev_hash) == (1, "trail.created", "0" * 64)
    with closing(sqlite3.connect(trail.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        for statement in ("UPDATE entries SET actor = 'x'", "DELETE FROM entries", "DELETE FROM meta"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)


def test_reopening_continues_the_chain_and_a_foreign_or_missing_key_is_refused(tmp_path: Path):
    trail = AuditTrail.for_state(tmp_path, "site:hospital-a")
    trail.append(*next(iter(EXAMPLES.items())))
    again = AuditTrail.for_state(tmp_path, "site:hospital-a")
    assert again.append("model.received", EXAMPLES["model.received"]).sequence == 3
    key = tmp_path / "keys" / "audit-ed25519.key"
    with pytest.raises(AuditKeyError, match="started with signing key"):
        AuditTrail(trail.path, load_signing_key(tmp_path / "other"), "coordinator")
    os.chmod(key, 0o644)
    with pytest.raises(UntrustedKeyError, match="chmod 600"):
        AuditTrail.for_state(tmp_path, "site:hospital-a")
    key.unlink()
    with pytest.raises(AuditKeyError, match="restore the key"):
        AuditTrail.for_state(tmp_path, "site:hospital-a")
    assert not key.exists()  # no new key was made that could never continue the trail
    assert verify(trail.path).ok


LEAKS = [
    ("gdpr.access", {"patient": "MRN-0042"}),  # a raw identifier instead of the pseudonym
    ("gdpr.erasure", {"patient": "p-" + "0A" * 12}),
    ("data.rejected", {"modality": "imaging", "items": 1, "reasons": {"Jane Doe": 1}}),
    ("data.rejected", {"modality": "imaging", "items": 1, "reasons": {"imaging.bad": "/Doe^Jane/a.dcm"}}),
    ("data.discovered", {"modality": "John Smith", "items": 1, "patients": 1}),
    ("data.discovered", {"modality": "1961-04-12", "items": 1, "patients": 1}),
    ("training.refused", {"round": 1, "reason": "patient jane.doe@example.org asked us to stop"}),
    ("report.generated", {"report": "12 Baker Street, London"}),
    ("model.received", {"round": 1, "model": "ab" * 32, "note": "free text"}),
    ("training.round", {"round": 1, "epsilon": float("nan"), "examples": 3, "update": "ab" * 32}),
    ("consent.withdrawn", {"patients": True}),
    ("anchor", {"site": "Hospital A", "sequence": 1, "hash": "ab" * 32}),
    ("patient.name", {}),
]


@pytest.mark.parametrize(("event", "details"), LEAKS)
def test_details_refuse_identifying_or_free_text_and_write_nothing(tmp_path: Path, event: str,
                                                                   details: dict[str, Any]):
    trail = AuditTrail.for_state(tmp_path, "site:hospital-a")
    before = trail.head()
    with pytest.raises(AuditDetailsError) as refused:
        trail.append(event, details)
    assert trail.head() == before
    for value in ("MRN-0042", "Jane", "John", "1961", "Baker", "jane.doe"):
        assert value not in str(refused.value)  # the refusal itself does not echo the value


@pytest.mark.parametrize("actor", ["Dr. Jane Doe", "jane doe", ""])
def test_an_actor_must_be_a_code(tmp_path: Path, actor: str):
    trail = AuditTrail.for_state(tmp_path, "coordinator")
    with pytest.raises(AuditDetailsError):
        trail.append("model.received", EXAMPLES["model.received"], actor=actor)


def _append_many(state: str, worker: int, count: int, start: Any) -> None:
    trail = AuditTrail.for_state(Path(state), f"site:worker-{worker}")
    start.wait(30)  # both are ready: the appends overlap
    for round_ in range(count):
        trail.append("model.received", {"round": round_, "model": f"{worker:02x}" * 32})
        time.sleep(0.003)  # other work between events; without it one writer's burst can starve the other


def test_two_processes_appending_at_once_make_one_valid_chain(tmp_path: Path):
    AuditTrail.for_state(tmp_path, "coordinator")  # key and trail exist before the race
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w, 25, start)) for w in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0]
    result = verify(tmp_path / "audit.db", load_public_key(public_key_path(tmp_path)))
    assert (result.ok, result.entries) == (True, 51)
    actors = [e.actor for e in read_trail(tmp_path / "audit.db")[1][1:]]
    assert actors.count("site:worker-1") == actors.count("site:worker-2") == 25
    assert actors != sorted(actors), "the two writers did not overlap; the test proved nothing"


def test_fhir_export_validates_every_entry_and_keeps_the_chain(tmp_path: Path):
    trail = AuditTrail.for_state(tmp_path / "state", "site:hospital-a")
    for event, details in EXAMPLES.items():
        trail.append(event, details)
    out = tmp_path / "export" / "audit.ndjson"
    parser = argparse.ArgumentParser()
    audit_cli.add_parser(parser.add_subparsers(dest="command"))
    argv = ["audit", "export", str(tmp_path / "state"), "--fhir", str(out)]
    assert audit_cli.run(parser.parse_args(argv)) == 0
    lines = out.read_text().splitlines()
    entries = trail.entries()
    assert len(lines) == len(entries) == len(EXAMPLES) + 1
    for line, entry in zip(lines, entries, strict=True):
        event = AuditEvent.model_validate(json.loads(line))
        assert (event.id, event.code.coding[0].code, event.agent[0].who.identifier.value) == \
            (entry.hash, entry.event, entry.actor)
        details = {d.type.coding[0].code: d for d in event.entity[0].detail}
        assert details["signature"].valueString == entry.signature
        assert details["sequence"].valueInteger == entry.sequence
        assert all(d.type.coding[0].system == DETAIL_SYSTEM for d in details.values())
    rejected = AuditEvent.model_validate(json.loads(lines[3]))
    assert {d.type.coding[0].code: d.valueInteger for d in rejected.entity[0].detail
            }["reasons.records.no-patient"] == 2
