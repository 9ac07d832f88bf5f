"""Faults on the real Flower engine: a hospital's SuperNode dies mid-run, the coordinator dies mid-run.

What must hold either way: the study still finishes, and no site ever spends privacy budget twice for one
(run, round), read straight from each site's ledger.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from loopback import HOSPITALS, REPO, Loopback, wait_for

from privacy.ledger import PrivacyLedger, Spend

pytestmark = pytest.mark.slow

STUDY = """\
[dp]
rounds = {rounds}
batch-size = 8
accountant = "rdp"

[federation]
min-sites = 2
round-timeout-s = 150
"""


def _spends(state: Path) -> list[Spend]:
    return PrivacyLedger.for_state(state).spends() if (state / "ledger.db").exists() else []


def _checkpoint(out: Path, round: int) -> dict[str, Any] | None:
    path = out / "coordinator" / "checkpoints" / f"round-{round:04d}.pt"
    return torch.load(path, weights_only=True) if path.exists() else None


def _trained(entry: dict[str, Any]) -> set[str]:
    """The sites whose update went into a round (in the checkpoint's history)."""
    return {r["site"] for r in entry["train"] if r["error"] is None and "epsilon-spent" in r["metrics"]}


def _federation(loopback: Loopback, root: Path, states: Path) -> None:
    """Three registered hospitals online, each SuperNode beside its site (folders of ``root`` by name)."""
    sites = sorted(p for p in root.iterdir() if p.is_dir())
    loopback.start_superlink()
    ids = [loopback.register(h) for h in HOSPITALS]
    for hospital, site in zip(HOSPITALS, sites, strict=True):
        loopback.start_supernode(hospital, site, states / hospital)
    loopback.wait_online(ids)


def _study(tmp_path: Path, rounds: int) -> dict[str, str]:
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(rounds=rounds))
    return {"study": str(study), "out-dir": str(tmp_path / "out")}


def test_a_supernode_killed_mid_run_is_left_out_and_spends_nothing_more(federation, tmp_path):
    states, out = tmp_path / "state", tmp_path / "out"
    with Loopback(tmp_path / "federation", HOSPITALS) as loopback:
        _federation(loopback, federation[0], states)
        run = loopback.submit_app(REPO, _study(tmp_path, rounds=3))
        first = wait_for(lambda: _checkpoint(out, 1), 240, "round 1's checkpoint", loopback.logs)
        assert _trained(first["history"][0]) == set(HOSPITALS)
        loopback.crash_supernode("hospital-c")  # round 2 has just been sent out
        at_death = _spends(states / "hospital-c")
        status = loopback.wait_finished(run, timeout=300)
        assert status == "finished:completed", (status, loopback.logs)
    assert _spends(states / "hospital-c") == at_death, "the dead site's ledger changed after it died"
    history = _checkpoint(out, 3)["history"]
    assert [e["round"] for e in history] == [1, 2, 3]
    assert [_trained(e) for e in history] == [set(HOSPITALS), {"hospital-a", "hospital-b"},
                                              {"hospital-a", "hospital-b"}], history
    # Round 2 went to the dead node too (the SuperLink still counted it online); once its heartbeats had
    # lapsed (2 x 30 s) the SuperLink answered for it, well before round-timeout-s. Round 3 left it out.
    [dead] = [r for r in history[1]["train"] if r["site"] not in ("hospital-a", "hospital-b")]
    assert dead["site"] == "hospital-c" and "Node Unavailable" in dead["error"], dead
    assert {r["site"] for r in history[2]["train"]} == {"hospital-a", "hospital-b"}
    for hospital in ("hospital-a", "hospital-b"):
        assert sorted(s.round for s in _spends(states / hospital)) == [1, 2, 3]


def test_a_coordinator_killed_mid_run_resumes_and_no_site_spends_a_round_twice(federation, tmp_path):
    states, out = tmp_path / "state", tmp_path / "out"
    config = _study(tmp_path, rounds=3)
    with Loopback(tmp_path / "federation", HOSPITALS) as loopback:
        _federation(loopback, federation[0], states)
        first_run = loopback.submit_app(REPO, config)
        first = wait_for(lambda: _checkpoint(out, 1), 240, "round 1's checkpoint", loopback.logs)
        study_run = first["run_id"]

        def trained_round_2() -> bool:
            return all(any(s.run_id == study_run and s.round == 2 for s in _spends(states / h))
                       for h in HOSPITALS)

        # Every site has trained (and spent for) round 2; the coordinator has not saved it yet.
        wait_for(trained_round_2, 240, "every site's round 2 spend", loopback.logs)
        [coordinator] = loopback.processes("flwr-serverapp")
        loopback.crash(coordinator)
        assert _checkpoint(out, 2) is None, "round 2 was saved before the kill: the test came too late"
        at_kill = {h: _spends(states / h) for h in HOSPITALS}
        # Flower still lists the run as running (until the ServerApp's heartbeats lapse, then failed):
        # stop it, as an operator would, so that nothing of it is delivered to the sites any more.
        loopback.stop_run(first_run)
        assert loopback.run_status(first_run) == "finished:stopped"
        second_run = loopback.submit_app(REPO, config)
        status = loopback.wait_finished(second_run, timeout=300)
        assert status == "finished:completed", (status, loopback.logs)
    assert {_checkpoint(out, r)["run_id"] for r in (1, 2, 3)} == {study_run}
    history = _checkpoint(out, 3)["history"]
    assert [e["round"] for e in history] == [1, 2, 3]
    assert all(_trained(e) == set(HOSPITALS) for e in history), history
    for hospital in HOSPITALS:
        spends = _spends(states / hospital)
        assert Counter((s.run_id, s.round) for s in spends) == {(study_run, r): 1 for r in (1, 2, 3)}
        # Round 2 was replayed from the site's round store: its only spend is the one made before the kill.
        assert [s for s in spends if s.round <= 2] == at_kill[hospital]
