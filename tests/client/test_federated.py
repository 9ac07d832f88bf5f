"""A site as a federation participant, without Flower: rounds, refusals, replays, the audit trail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from client.cohort import CohortManifest
from client.federated import MIN_CELL, FederatedSite, SiteRefused
from compliance.audit_verify import verify
from compliance.gdpr import UsageRegister
from modalities.fusion import create_model
from polyclinic.study import Study, default_study
from polyclinic.synth import GroundTruth
from privacy.ledger import PrivacyLedger


def _study(**dp: object) -> Study:
    study = default_study()
    return study.model_copy(update={"dp": study.dp.model_copy(update={"batch_size": 8, "rounds": 2,
                                                                      "accountant": "rdp", **dp})})


@pytest.fixture
def site(federation: tuple[Path, GroundTruth], tmp_path: Path) -> FederatedSite:
    root, truth = federation
    return FederatedSite(root / truth.sites[0].id, _study(), tmp_path / "state", seed=3)


def test_a_round_spends_budget_records_it_and_changes_the_weights(site: FederatedSite) -> None:
    start = create_model(site.study).state_dict()
    outcome = site.train(start, run_id="run-1", round=1)
    assert not outcome.replayed
    assert any(not torch.equal(outcome.weights[k], start[k]) for k in start)
    m = outcome.metrics
    assert 0 < m["epsilon-spent"] < m["epsilon-budget"]
    assert m["epsilon-round"] == pytest.approx(m["epsilon-spent"])
    assert m["epsilon-remaining"] == pytest.approx(m["epsilon-budget"] - m["epsilon-spent"])
    assert m["num-examples"] > 0
    spends = PrivacyLedger.for_state(site.state).spends()
    assert [(s.run_id, s.round) for s in spends] == [("run-1", 1)]
    result = verify(site.state / "audit.db")
    assert result.ok, result.summary()
    events = [e.event for e in site.trail.entries()]
    assert {"model.received", "training.round", "consent.decided", "cache.built"} <= set(events)


def test_a_repeated_round_is_replayed_without_a_second_spend(site: FederatedSite) -> None:
    start = create_model(site.study).state_dict()
    first = site.train(start, run_id="run-1", round=1)
    again = site.train(start, run_id="run-1", round=1)
    assert again.replayed and again.digest == first.digest
    assert len(PrivacyLedger.for_state(site.state).spends()) == 1


def test_the_same_round_from_other_weights_is_refused(site: FederatedSite) -> None:
    start = create_model(site.study).state_dict()
    site.train(start, run_id="run-1", round=1)
    other = {k: v + 1 if v.is_floating_point() else v for k, v in start.items()}
    with pytest.raises(SiteRefused) as refused:
        site.train(other, run_id="run-1", round=1)
    assert refused.value.code == "site.round-already-spent"
    assert len(PrivacyLedger.for_state(site.state).spends()) == 1


def test_a_spent_budget_is_refused_with_its_code_and_nothing_is_recorded(
        federation: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    root, truth = federation
    site = FederatedSite(root / truth.sites[0].id, _study(rounds=1), tmp_path / "state", seed=3)
    weights = create_model(site.study).state_dict()
    site.train(weights, run_id="run-1", round=1)  # a one-round plan spends the whole budget
    with pytest.raises(SiteRefused) as refused:
        site.train(weights, run_id="run-1", round=2)
    assert refused.value.code in {"dp.budget-spent", "dp.budget-too-small"}
    assert len(PrivacyLedger.for_state(site.state).spends()) == 1
    assert site.trail.entries()[-1].event == "training.refused"


def test_a_study_without_dp_is_refused(federation: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    root, truth = federation
    site = FederatedSite(root / truth.sites[0].id, _study(enabled=False), tmp_path / "state")
    with pytest.raises(SiteRefused) as refused:
        site.train(create_model(site.study).state_dict(), run_id="run-1", round=1)
    assert refused.value.code == "dp.disabled"
    assert not (site.state / "ledger.db").exists()


def test_weights_of_another_architecture_are_refused(site: FederatedSite) -> None:
    with pytest.raises(SiteRefused) as refused:
        site.train({"not-a-layer": torch.zeros(3)}, run_id="run-1", round=1)
    assert refused.value.code == "site.model-mismatch"


def test_evaluation_withholds_figures_below_the_minimum_cell(site: FederatedSite) -> None:
    site.prepare()
    evaluation = site.evaluate(create_model(site.study).state_dict())
    assert evaluation.examples > 0
    if evaluation.examples < MIN_CELL:
        assert evaluation.auroc is None and evaluation.loss is None
    metrics = evaluation.metrics()
    assert set(metrics) == {"num-examples", "prevalence", "loss", "auroc"}


def _withdraw_one(records: Path) -> None:
    """Set the first active research Consent found to ``inactive``: the patient withdraws."""
    for path in sorted(records.glob("*.json")):
        bundle = json.loads(path.read_text())
        consents = [e["resource"] for e in bundle.get("entry", [])
                    if e["resource"]["resourceType"] == "Consent" and e["resource"]["status"] == "active"]
        if consents:
            consents[0]["status"] = "inactive"
            path.write_text(json.dumps(bundle))
            return
    raise AssertionError("no active consent to withdraw")


def test_a_withdrawal_between_rounds_excludes_the_patient_from_the_next_round_and_is_logged(
        federation: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    root, truth = federation
    folder = tmp_path / "site"
    shutil.copytree(root / truth.sites[0].id, folder)  # site A: opt-in R4 bundles
    site = FederatedSite(folder, _study(), tmp_path / "state", seed=3)
    weights = create_model(site.study).state_dict()
    first = site.train(weights, run_id="run-1", round=1)
    before = {p.pseudonym for p in CohortManifest.load(site.state).patients}
    _withdraw_one(folder / "records")
    site.train(first.weights, run_id="run-1", round=2)
    after = {p.pseudonym for p in CohortManifest.load(site.state).patients}
    assert len(before - after) == 1 and after < before
    gone = (before - after).pop()
    assert [r for _, r, _ in UsageRegister.for_state(site.state).rounds_for(gone)] in ([1], [])
    withdrawn = [e for e in site.trail.entries() if e.event == "consent.withdrawn"]
    assert [json.loads(e.details) for e in withdrawn] == [{"patients": 1, "round": 2}]
