"""``polyclinic demo`` end to end, as a user runs it: one JSON object, the DESIGN.md layout, a model that
learned something, every site within its budget, and not one identifier of a synthetic patient anywhere
outside the sites' own data folders (states, coordinator, model, report, summary, stdout, stderr)."""

from __future__ import annotations

import json

import pytest
from leak_search import identifiers, leaks, texts_under

from polyclinic.synth import GroundTruth
from polyclinic.synth.generate import GROUND_TRUTH
from privacy.ledger import PrivacyLedger

pytestmark = pytest.mark.slow


def test_json_output_is_one_object_with_the_promised_keys(demo_run) -> None:
    lines = demo_run.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert {"auroc", "sites", "rounds", "seconds"} <= set(summary)
    assert summary["rounds"] == 2 and len(summary["sites"]) == 3
    assert summary == json.loads((demo_run.out / "summary.json").read_text())


def test_the_run_leaves_the_layout_of_the_design(demo_run) -> None:
    out = demo_run.out
    for path in ("model/model.pt", "model/model-card.json", "model/model-card.md", "report/report.html",
                 "report/report.json", "coordinator/audit.db", "coordinator/checkpoints/round-0002.pt"):
        assert (out / path).is_file(), path
    for site in ("hospital-a", "hospital-b", "hospital-c"):
        for name in ("ledger.db", "audit.db", "gdpr.db"):
            assert (out / "state" / site / name).is_file(), (site, name)


def test_every_site_trained_every_round_within_its_budget(demo_run) -> None:
    summary = json.loads(demo_run.stdout)
    for site, facts in summary["sites"].items():
        spends = PrivacyLedger.for_state(demo_run.out / "state" / site).spends()
        assert [s.round for s in spends] == [1, 2]
        assert facts["privacy"]["epsilon_spent"] == pytest.approx(spends[-1].epsilon_after)
        assert spends[-1].epsilon_after <= facts["privacy"]["epsilon_budget"]


def test_nothing_identifying_leaves_the_sites_data_folders(demo_run) -> None:
    truth = GroundTruth.load(demo_run.out / "sites" / GROUND_TRUTH)
    searched = identifiers(truth)
    texts, binaries = {}, {}
    for folder in ("state", "coordinator", "model", "report"):
        found_texts, found_binaries = texts_under(demo_run.out / folder)
        texts |= {f"{folder}/{k}": v for k, v in found_texts.items()}
        binaries |= {f"{folder}/{k}": v for k, v in found_binaries.items()}
    texts["summary.json"] = (demo_run.out / "summary.json").read_text().lower()
    texts["stdout"], texts["stderr"] = demo_run.stdout.lower(), demo_run.stderr.lower()
    assert any(name.endswith("audit.db") for name in texts) and any(n.endswith(".pt") for n in texts)
    assert leaks(texts, binaries, searched) == []
    assert str(demo_run.out / "sites") not in demo_run.stderr  # no third-party line quoting a file path
