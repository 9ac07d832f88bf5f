"""The auditor's report of a real demo run: its facts match the ledgers and trails, tampering shows,
nothing identifying is in it, and Debian's Chromium renders the page without a console message.

The run is the session's small ``polyclinic demo`` (``demo_run`` in tests/conftest.py); every test
reports on its own copy, since a report appends ``report.generated`` to the trails it read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from leak_search import identifiers, leaks

from client.site_config import load_site_config
from compliance.audit_chain import AUDIT_FILE, read_trail
from compliance.audit_verify import verify
from compliance.fairness import site_fairness
from compliance.gdpr import UsageRegister
from compliance.report_facts import FairnessFacts, ReportFacts
from compliance.report_html import SECTIONS, render_html
from polyclinic.cli import main
from polyclinic.synth.generate import GROUND_TRUTH
from polyclinic.synth.truth import GroundTruth
from privacy.ledger import PrivacyLedger
from privacy.pseudonym import Pseudonymiser

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def run(demo_run) -> Path:
    """The session's small demo run (tests/conftest.py); tests copy it before changing anything."""
    return demo_run.out


def report(*argv: str) -> int:
    """``polyclinic report ...`` through the real command line."""
    return main(["report", *argv])


def copy(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


@pytest.fixture(scope="module")
def reported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, dict[str, list]]:
    """(run copy, report folder, exit code, every trail's entries as they were before the report)."""
    work = copy(run, tmp_path_factory.mktemp("reported") / "run")
    trails = {p.parent.name: read_trail(p)[1] for p in work.glob("*/**/" + AUDIT_FILE)}
    out = work.parent / "report"
    return work, out, report(str(work), "--out", str(out)), trails


def _facts(out: Path) -> ReportFacts:
    return ReportFacts.model_validate_json((out / "report.json").read_text(encoding="utf-8"))


def test_report_json_matches_the_ledgers_and_trails(reported):
    work, out, code, before = reported
    facts = _facts(out)
    assert code == 0 and facts.problems == [] and facts.kind == "run"
    digest = hashlib.sha256((out / "report.json").read_bytes()).hexdigest()
    assert [s.site for s in facts.sites] == ["hospital-a", "hospital-b", "hospital-c"]
    for site in facts.sites:
        state = work / "state" / site.site
        config, _ = load_site_config(work / "sites" / site.site)
        ledger = PrivacyLedger.for_state(state)
        p = site.privacy
        assert (p.epsilon_budget, p.delta, p.budget_source) == (config.privacy.epsilon, config.privacy.delta,
                                                                 "site.toml")
        assert p.epsilon_spent == ledger.spent(config.privacy.delta) > 0 and not p.over_budget
        assert [r.model_dump() for r in p.spends] == [vars(s) for s in ledger.spends()]
        entries = before[site.site]
        assert site.audit.status == "intact" and site.audit.anchor_problems == []
        assert site.audit.entries == len(entries) and site.audit.head["hash"] == entries[-1].hash
        assert site.audit.events == dict(Counter(e.event for e in entries))
        decided = [e.details_dict() for e in entries if e.event == "consent.decided"][-1]
        assert (site.consent.decisions, site.consent.included, site.consent.excluded) == \
            (decided["decisions"], decided["included"], decided["excluded"])
        trained = [e.details_dict() for e in entries if e.event == "training.round"][-1]
        assert site.consent.trained == trained["examples"]
        assert p.audit_epsilon_total == trained["epsilon_total"]
        walks = [i for i, e in enumerate(entries) if e.event == "consent.decided"]
        rejected = {e.details_dict()["modality"]: e.details_dict()["reasons"]
                    for e in entries[walks[-2] + 1:walks[-1]] if e.event == "data.rejected"}
        assert {m: d.rejected for m, d in site.data.items() if d.rejected} == rejected
        after = read_trail(state / AUDIT_FILE)[1]
        assert len(after) == len(entries) + 1 and verify(state / AUDIT_FILE).ok
        assert (after[-1].actor, after[-1].event, after[-1].details_dict()) == \
            ("auditor", "report.generated", {"kind": "run", "report": digest})
    coordinator = read_trail(work / "coordinator" / AUDIT_FILE)[1]
    assert facts.coordinator.status == "intact" and facts.coordinator.entries == len(before["coordinator"])
    assert coordinator[-1].details_dict() == {"kind": "run", "report": digest}
    history = torch.load(sorted((work / "coordinator" / "checkpoints").glob("round-*.pt"))[-1],
                         weights_only=True)["history"]
    assert [r.trained for r in facts.model.rounds] == [
        {r["site"]: r["metrics"]["epsilon-spent"] for r in e["train"]} for e in history]
    assert facts.processing_record["study"] == facts.study and facts.processing_record["measures"]


def test_fairness_in_the_report_keeps_every_cell_of_at_least_k(reported):
    work, out, _, _ = reported
    facts = _facts(out)
    for site in facts.sites:
        manifest = json.loads((work / "state" / site.site / "cache" / "cohort.json").read_text())
        validation = sum(p["split"] == "validation" for p in manifest["patients"])
        table = site.fairness.table
        assert table.k == 10 and set(table.attributes) == {"age_band", "ethnicity", "sex"}
        for attribute in table.attributes.values():
            assert all(cell.n >= 10 for cell in attribute.groups.values())
            assert sum(cell.n for cell in attribute.groups.values()) + attribute.suppressed_n == validation
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "cells withheld (n &lt; 10 or revealing)" in html


def test_published_subgroups_are_rendered_and_small_ones_withheld(reported):
    """The demo's validation splits are too small to publish a cell; a larger table shows the rows."""
    _, out, _, _ = reported
    rng = np.random.default_rng(3)
    sex = ["female"] * 30 + ["male"] * 26 + ["other"] * 6 + ["unknown"] * 5  # the last two: 11 withheld
    table = site_fairness(rng.integers(0, 2, len(sex)), rng.random(len(sex)), {"sex": sex})
    facts = _facts(out)
    first = facts.sites[0].model_copy(update={"fairness": FairnessFacts(source="test", table=table)})
    html = render_html(facts.model_copy(update={"sites": [first, *facts.sites[1:]]}))
    assert "<td>female</td>" in html and "<td>male</td>" in html
    assert "<td>other</td>" not in html and "<td>unknown</td>" not in html
    assert "sex: demographic parity" in html


def _tamper(db: Path, sequence: int) -> None:
    """What an attacker with write access does: drop the guard and edit an entry's details."""
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER IF EXISTS entries_no_update")
        con.execute("UPDATE entries SET details = ? WHERE sequence = ?",
                    (json.dumps({"decisions": {}, "excluded": 0, "included": 40, "policy": "opt-in"}),
                     sequence))


def test_a_tampered_trail_shows_as_tampered(run, tmp_path):
    work = copy(run, tmp_path / "run")
    db = work / "state" / "hospital-b" / AUDIT_FILE
    decided = next(e.sequence for e in read_trail(db)[1] if e.event == "consent.decided")
    _tamper(db, decided)
    out = tmp_path / "report"
    assert report(str(work), "--out", str(out)) == 1
    facts = _facts(out)
    b = {s.site: s for s in facts.sites}["hospital-b"]
    assert (b.audit.status, b.audit.ok, b.audit.problem, b.audit.first_bad) == \
        ("tampered", False, "hash-mismatch", decided)
    assert b.audit.entries == decided - 1 and b.consent is None  # nothing after the edit is evidence
    assert any(p.startswith("site hospital-b: audit trail cannot be trusted") for p in facts.problems)
    assert all(s.audit.status == "intact" for s in facts.sites if s.site != "hospital-b")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<span class="bad">tampered</span>' in html and "Problems found" in html


def test_a_bare_state_is_reported_alone_and_says_where_its_budget_came_from(run, tmp_path):
    state = shutil.copytree(run / "state" / "hospital-c", tmp_path / "state")
    out = tmp_path / "report"
    assert report(str(state), "--out", str(out)) == 0
    facts = _facts(out)
    (site,) = facts.sites
    ledger = PrivacyLedger.for_state(state)
    assert facts.kind == "site" and site.site == "hospital-c" and facts.coordinator is None
    assert site.privacy.epsilon_budget is None and site.privacy.budget_source == "unknown"
    assert site.privacy.epsilon_spent == ledger.spent(ledger.spends()[-1].delta)
    assert any("site.toml was not found" in n for n in facts.notes) and site.fairness is None
    with_site = tmp_path / "with-site"
    assert report(str(state), "--out", str(with_site), "--site", str(run / "sites" / "hospital-c"),
                  "--model", str(run / "model" / "model.pt")) == 0
    facts = _facts(with_site)
    assert facts.sites[0].privacy.budget_source == "site.toml" and facts.sites[0].fairness is not None
    assert facts.processing_record["site"] == "hospital-c"
    kinds = [e.details_dict().get("kind") for e in read_trail(state / AUDIT_FILE)[1]
             if e.event == "report.generated"]
    assert kinds == ["run", "site", "site"]  # the demo's own report of the run, then these two


def test_a_state_inside_a_run_finds_its_site_toml(run, tmp_path):
    work = copy(run, tmp_path / "run")
    out = tmp_path / "report"
    assert report(str(work / "state" / "hospital-a"), "--out", str(out)) == 0
    (site,) = _facts(out).sites
    assert (site.site, site.privacy.budget_source, site.privacy.epsilon_budget) == \
        ("hospital-a", "site.toml", 8.0)


def test_a_folder_that_is_neither_is_refused(tmp_path, capsys):
    assert report(str(tmp_path), "--out", str(tmp_path / "report")) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_the_report_holds_no_identifier(run, reported):
    _, out, _, _ = reported
    truth = GroundTruth.load(run / "sites" / GROUND_TRUTH)
    searched = identifiers(truth)
    assert len(searched) > 6 * sum(len(s.patients) for s in truth.sites)
    texts = {name: (out / name).read_text(encoding="utf-8").lower()
             for name in ("report.html", "report.json")}
    assert leaks(texts, {}, searched) == []


def test_chromium_renders_the_report_without_a_console_message(reported, tmp_path):
    _, out, _, _ = reported
    assert Path(CHROMIUM).is_file(), (f"{CHROMIUM} is missing: install Debian's chromium "
                                      "(apt-get install -y chromium); this test must not be skipped")
    page = (out / "report.html").resolve().as_uri()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # a CSP violation (anything fetched), a script error: all show up here
    for key in ("overview", *SECTIONS):
        assert f'<section id="{key}">' in dom.stdout
    assert dom.stdout.count("<svg") >= 1 + 3 + 1 and "Record of processing activities" in dom.stdout
    shot = tmp_path / "report.png"
    picture = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,3000", page],
                             capture_output=True, text=True, timeout=120)
    assert picture.returncode == 0, picture.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_an_erasure_is_reported_with_the_residual_bound_of_the_rounds_that_used_the_patient(run, tmp_path):
    work = copy(run, tmp_path / "run")
    state = work / "state" / "hospital-a"
    truth = GroundTruth.load(work / "sites" / GROUND_TRUTH)
    pseudonymiser, usage = Pseudonymiser.for_state(state), UsageRegister.for_state(state)
    used = next(p for p in truth.sites[0].patients if usage.rounds_for(pseudonymiser.patient(p.mrn)))
    assert main(["gdpr", "erase", str(work / "sites" / "hospital-a"), used.mrn, "--state", str(state)]) == 0
    out = tmp_path / "report"
    report(str(work), "--out", str(out))
    facts = _facts(out)
    site = next(s for s in facts.sites if s.site == "hospital-a")
    (erasure,) = site.gdpr.erasures
    spends = PrivacyLedger.for_state(state).spends()
    assert erasure.rounds_used == 2 == len(spends)
    assert erasure.residual_epsilon == pytest.approx(spends[-1].epsilon_after, rel=1e-6)
    assert all(s.gdpr.erasures == [] and s.gdpr.access_requests == 0 for s in facts.sites
               if s.site != "hospital-a")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="gdpr"' in html and f"{erasure.residual_epsilon:.3f}" in html
    assert pseudonymiser.patient(used.mrn) not in html and used.mrn.lower() not in html.lower()
