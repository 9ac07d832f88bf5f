"""The auditor's report of a run or of one site: ``report.json`` (the facts) and ``report.html`` (the page).

An auditor or DPO needs one document answering: was any site's privacy budget overspent, who was left
out and why (consent, unusable data), does the model treat subgroups alike, can the trails be trusted,
and what is the processing (GDPR Art. 30). :func:`build_report` reads those facts from the ledgers and
trails (``compliance.report_gather``); :func:`write_report` writes both files; :func:`record_report`
signs a ``report.generated`` entry with the SHA-256 of ``report.json`` into every trail that was
reported on, so a report handed around later can be matched to the trail that says it was made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compliance.audit import AuditKeyError, AuditTrail
from compliance.audit_chain import AUDIT_FILE, AuditUnreadable
from compliance.audit_events import AuditDetailsError
from compliance.fairness import merge
from compliance.report_facts import AuditStatus, FairnessFacts, ReportFacts, SiteFacts
from compliance.report_gather import (
    Budget,
    Layout,
    audit_status,
    checkpoint_history,
    consent_funnel,
    data_facts,
    gdpr_facts,
    history_budget,
    model_facts,
    privacy_facts,
)
from compliance.report_html import render_html

REPORT_JSON, REPORT_HTML = "report.json", "report.html"
AUDITOR = "auditor"
"""The actor of ``report.generated`` entries."""
EPSILON_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SiteInputs:
    """What only the layers above ``compliance`` can tell about a site."""

    budget: Budget | None
    """From the site's site.toml; None when it could not be found."""
    fairness: FairnessFacts | None = None
    fairness_note: str | None = None
    """Why there is no fairness table (no model, no prepared cohort ...)."""


def _site(site_id: str, state: Path, given: SiteInputs, history: list[dict[str, Any]],
          coordinator: Path | None, notes: list[str]) -> SiteFacts:
    budget = given.budget
    if budget is None:
        budget = history_budget(history, site_id) or Budget(None, None, "unknown")
        notes.append(f"site {site_id}: its site.toml was not found; the privacy budget is "
                     + ("unknown (give the site folder with --site)" if budget.epsilon is None
                        else f"the one it reported to the coordinator ({budget.source})"))
    audit, entries = audit_status(state / AUDIT_FILE, coordinator=coordinator, site_id=site_id)
    privacy = privacy_facts(state, budget, entries)
    return SiteFacts(site=site_id, state=str(state), privacy=privacy,
                     audit=audit, consent=consent_funnel(entries), data=data_facts(entries),
                     fairness=given.fairness, fairness_note=given.fairness_note,
                     gdpr=gdpr_facts(state, privacy.delta))


def _site_problems(s: SiteFacts) -> list[str]:
    problems = []
    if s.audit.status == "tampered":
        anchors = "; ".join(f"{p['code']}: {p['message']}" for p in s.audit.anchor_problems or []
                            if p["code"] != "unanchored")
        problems.append(f"site {s.site}: audit trail cannot be trusted: {s.audit.message}"
                        + (f" (cross-check: {anchors})" if anchors else ""))
    p = s.privacy
    if p.over_budget:
        problems.append(f"site {s.site}: epsilon {p.epsilon_spent:.3f} spent, over its budget "
                        f"{p.epsilon_budget:g} at delta {p.delta:g}")
    ledger, trail = (p.spends[-1].epsilon_after if p.spends else None), p.audit_epsilon_total
    if ledger is None or trail is None:
        agree = ledger is None and trail is None
    else:
        agree = abs(ledger - trail) <= EPSILON_TOLERANCE
    if not agree:
        problems.append(f"site {s.site}: the ledger's latest epsilon ({_or_none(ledger)}) and the trail's "
                        f"latest training.round epsilon_total ({_or_none(p.audit_epsilon_total)}) disagree")
    return problems


def _or_none(value: float | None) -> str:
    return "none" if value is None else f"{value:.6f}"


def _problems(sites: Sequence[SiteFacts], coordinator: AuditStatus | None) -> list[str]:
    problems = [p for s in sites for p in _site_problems(s)]
    if coordinator is not None and not coordinator.ok:
        problems.append(f"coordinator: audit trail cannot be trusted: {coordinator.message}")
    return problems


def build_report(layout: Layout, *, study: str, inputs: Mapping[str, SiteInputs],
                 processing_record: dict[str, Any] | None, notes: Sequence[str] = ()) -> ReportFacts:
    """Every fact of the report, read now from the files of ``layout``."""
    notes = list(notes)
    history = checkpoint_history(layout.coordinator) if layout.coordinator is not None else []
    sites = [_site(site_id, state, inputs.get(site_id, SiteInputs(None)), history, layout.coordinator, notes)
             for site_id, state in sorted(layout.states.items())]
    coordinator = audit_status(layout.coordinator / AUDIT_FILE)[0] if layout.coordinator is not None else None
    tables = [s.fairness.table for s in sites if s.fairness is not None]
    federated = (FairnessFacts(source="site tables summed per group (compliance.fairness.merge), "
                               "suppressed again at k", table=merge(tables)) if len(tables) > 1 else None)
    return ReportFacts(
        kind=layout.kind, source=str(layout.root),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), study=study, sites=sites,
        coordinator=coordinator, model=model_facts(layout.root, history) if layout.kind == "run" else None,
        federated_fairness=federated, processing_record=processing_record, notes=notes,
        problems=_problems(sites, coordinator))


def _write(path: Path, text: str) -> None:
    """Whole file or nothing: a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_report(facts: ReportFacts, out: Path) -> str:
    """Write ``out/report.json`` and ``out/report.html``; returns the SHA-256 (hex) of report.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = facts.to_json()
    _write(out / REPORT_JSON, text)
    _write(out / REPORT_HTML, render_html(facts))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_report(layout: Layout, kind: str, digest: str) -> list[str]:
    """Append ``report.generated`` to the coordinator's and every site's trail; returns what failed, and why.

    A trail that failed verification is still written to: the entry cannot repair it, but it records
    that a report flagged it. A missing trail is not started; it and any trail that cannot be written
    are named in the result.
    """
    folders = [*layout.states.values(), *([layout.coordinator] if layout.coordinator is not None else [])]
    failed = []
    for folder in folders:
        if not (folder / AUDIT_FILE).is_file():  # never start a trail just to say a report was made
            failed.append(f"{folder / AUDIT_FILE}: no trail there; report.generated not recorded")
            continue
        try:
            AuditTrail.for_state(folder, AUDITOR).append("report.generated", {"kind": kind, "report": digest})
        except (AuditKeyError, AuditUnreadable, AuditDetailsError, sqlite3.Error, OSError) as exc:
            failed.append(f"{folder / AUDIT_FILE}: report.generated not recorded ({exc})")
    return failed
