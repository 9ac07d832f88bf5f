"""The study end to end in Flower's Simulation Engine: rounds, checkpoints, anchors, and a resume after a
coordinator crash that must not spend any site's budget twice. Real Ray workers, real SQLite files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from client.site import Site
from compliance.audit_verify import check_anchors, verify
from polyclinic.simulation import concurrent_sites, simulate
from polyclinic.study import Study, default_study
from polyclinic.synth import GroundTruth
from privacy.ledger import PrivacyLedger
from server.checkpoint import CheckpointStore
from server.model_card import CARD_JSON, MODEL_FILE
from server.rounds import RoundSummary

pytestmark = pytest.mark.slow


def _study() -> Study:
    study = default_study()
    return study.model_copy(update={"dp": study.dp.model_copy(update={"batch_size": 8, "rounds": 2,
                                                                      "accountant": "rdp"})})


@pytest.fixture(scope="module")
def finished(federation: tuple[Path, GroundTruth], tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, GroundTruth, list[RoundSummary]]:
    root, truth = federation
    out = tmp_path_factory.mktemp("simulation")
    for site in truth.sites:
        Site(root / site.id, _study(), out / "state" / site.id).run(build_cache=True)
    summaries: list[RoundSummary] = []
    simulate(_study(), root, out / "state", out, sites=len(truth.sites), on_round=summaries.append)
    return out, truth, summaries


def test_every_round_is_trained_by_every_site_and_checkpointed(finished) -> None:
    out, truth, summaries = finished
    assert [s.round for s in summaries] == [1, 2]
    for summary in summaries:
        assert sorted(r.site_id for r in summary.train if "epsilon-spent" in r.metrics) == \
            sorted(s.id for s in truth.sites)
    checkpoints = sorted(p.name for p in (out / "coordinator" / "checkpoints").glob("round-*.pt"))
    assert checkpoints == ["round-0001.pt", "round-0002.pt"]
    assert (out / "model" / MODEL_FILE).exists() and (out / "model" / CARD_JSON).exists()


def test_every_site_reports_its_own_wall_and_cpu_time(finished) -> None:
    _, _, summaries = finished
    for reply in (r for s in summaries for r in (*s.train, *s.evaluate)):
        assert 0 < reply.metrics["site-cpu-seconds"] <= reply.metrics["site-seconds"] * 1.5 + 0.5


def test_sites_run_all_at_once_up_to_two_per_core_then_one_per_core() -> None:
    assert concurrent_sites(3, cores=2) == 3
    assert concurrent_sites(4, cores=2) == 4
    assert concurrent_sites(5, cores=2) == 2
    assert concurrent_sites(100, cores=2) == 2
    assert concurrent_sites(1, cores=16) == 1


def test_epsilon_adds_up_and_stays_within_each_budget(finished) -> None:
    out, truth, summaries = finished
    for site in truth.sites:
        spends = PrivacyLedger.for_state(out / "state" / site.id).spends()
        assert [s.round for s in spends] == [1, 2]
        assert spends[0].epsilon_after < spends[1].epsilon_after <= 8.0 + 1e-9
        reported = [r.metrics["epsilon-spent"] for s in summaries for r in s.train if r.site_id == site.id]
        assert reported == pytest.approx([s.epsilon_after for s in spends])


def test_both_trails_verify_and_every_site_is_anchored_at_the_coordinator(finished) -> None:
    out, truth, _ = finished
    coordinator = out / "coordinator" / "audit.db"
    assert verify(coordinator).ok
    for site in truth.sites:
        site_db = out / "state" / site.id / "audit.db"
        assert verify(site_db).ok
        assert check_anchors(site_db, coordinator, site.id) == []


def test_a_coordinator_restarted_after_a_lost_checkpoint_resumes_without_spending_twice(
        finished, federation: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    out, truth, _ = finished
    root, _ = federation
    crashed = tmp_path / "crashed"
    shutil.copytree(out, crashed)
    store = CheckpointStore(crashed / "coordinator" / "checkpoints")
    final = torch.load(crashed / "coordinator" / "checkpoints" / "round-0002.pt", weights_only=True)
    # the coordinator died after the sites trained round 2 but before it saved round 2
    (crashed / "coordinator" / "checkpoints" / "round-0002.pt").unlink()
    spends_before = {s.id: len(PrivacyLedger.for_state(crashed / "state" / s.id).spends())
                     for s in truth.sites}
    resumed: list[RoundSummary] = []
    simulate(_study(), root, crashed / "state", crashed, sites=len(truth.sites), on_round=resumed.append)
    assert [s.round for s in resumed] == [2]
    assert {s.id: len(PrivacyLedger.for_state(crashed / "state" / s.id).spends()) for s in truth.sites} \
        == spends_before
    latest = store.latest(final["study_digest"])
    assert latest is not None and latest.run_id == final["run_id"] and latest.round == 2
    for name, tensor in final["weights"].items():
        torch.testing.assert_close(latest.weights[name], tensor)
