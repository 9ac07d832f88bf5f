"""A site's answer to the coordinator's query: counts and budget, and the refusal training would give."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.federated import FederatedSite, SiteRefused
from client.site_summary import site_counts
from modalities.fusion import create_model
from polyclinic.study import Study, default_study
from polyclinic.synth import GroundTruth
from privacy.ledger import PrivacyLedger


def _study(**dp: object) -> Study:
    study = default_study()
    return study.model_copy(update={"dp": study.dp.model_copy(update={"batch_size": 8, "rounds": 1,
                                                                      "accountant": "rdp", **dp})})


def test_a_fresh_site_is_ready_and_reports_its_cohort_and_budget(
        federation: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    root, truth = federation
    site = FederatedSite(root / truth.sites[0].id, _study(), tmp_path / "state")
    summary = site.summary("run-1")
    m = summary.metrics
    assert summary.refusal == ""
    assert m["patients-train"] + m["patients-validation"] == m["patients-included"] > 0
    assert m["epsilon-spent"] == 0 and m["epsilon-remaining"] == m["epsilon-budget"] == 8.0
    assert m["imaging-accepted"] > 0 and m["records-accepted"] > 0
    assert m["imaging-rejected"] >= 1  # every synthetic site carries a truncated DICOM file
    assert all(isinstance(v, float) for v in m.values())


def test_after_its_whole_plan_the_site_says_it_would_refuse_as_training_does(
        federation: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    root, truth = federation
    site = FederatedSite(root / truth.sites[0].id, _study(), tmp_path / "state", seed=3)
    site.train(create_model(site.study).state_dict(), run_id="run-1", round=1)  # one round: the whole budget
    summary = site.summary("run-1")
    assert summary.refusal in {"dp.budget-spent", "dp.budget-too-small"}
    assert 0 < summary.metrics["epsilon-spent"] <= 8.0
    assert len(PrivacyLedger.for_state(site.state).spends()) == 1  # asking spends nothing
    with pytest.raises(SiteRefused) as refused:  # and training agrees
        site.train(create_model(site.study).state_dict(), run_id="run-1", round=2)
    assert refused.value.code == summary.refusal


def test_a_study_without_dp_is_not_ready(
        federation: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    root, truth = federation
    site = FederatedSite(root / truth.sites[0].id, _study(enabled=False), tmp_path / "state")
    assert site.summary("run-1").refusal == "dp.disabled"


def test_counts_come_from_the_latest_walk_and_the_ledger(federation: tuple[Path, GroundTruth],
                                                         tmp_path: Path) -> None:
    root, truth = federation
    site = FederatedSite(root / truth.sites[0].id, _study(), tmp_path / "state")
    report = site.prepare()
    counts = site_counts(report, PrivacyLedger.for_state(site.state), site.site.config.privacy)
    assert counts["patients-included"] == report.patients.included
    assert counts["patients-consent-excluded"] == sum(report.patients.consent_excluded.values()) > 0
