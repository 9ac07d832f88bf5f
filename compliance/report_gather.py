"""Reading the facts of a report from disk: the layout, the ledgers, the trails and the coordinator's history.

Everything here reads; nothing creates or changes a file (a ledger that is not there is reported
missing, not created). Counts come from the audit trails' *verified* entries only: after the first
entry that fails verification nothing in a trail is evidence, and the report says the trail is
tampered instead. The site's configuration and the fairness evaluation need the packages above
``compliance`` (site config, cohort, model), so the caller passes them in.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from compliance.audit_chain import AUDIT_FILE, AuditUnreadable, Entry
from compliance.audit_verify import Problem, check_anchors, walk
from compliance.gdpr import GDPR_FILE, RequestRegister, UsageRegister
from compliance.gdpr_bound import residual_bound
from compliance.report_facts import (
    AuditStatus,
    ConsentFunnel,
    DataFacts,
    ErasureFact,
    GdprFacts,
    ModelFacts,
    PrivacyFacts,
    RoundFacts,
    SpendRow,
    trail_status,
)
from privacy.ledger import LEDGER_FILE, PrivacyLedger

MANIFEST = Path("cache") / "cohort.json"
_CHECKPOINT = re.compile(r"^round-(\d{4,})\.pt$")


@dataclass(frozen=True)
class Budget:
    """A site's (epsilon, delta) and where it was read."""

    epsilon: float | None
    delta: float | None
    source: str


@dataclass(frozen=True)
class Layout:
    """What ``RUN_OR_STATE`` is: a demo/federated run folder, or one site's STATE."""

    kind: Literal["run", "site"]
    root: Path
    states: dict[str, Path]
    """Site id -> STATE folder."""
    coordinator: Path | None
    model: Path | None
    """The global model's weights, where the run has them."""


def _is_state(folder: Path) -> bool:
    return (folder / AUDIT_FILE).is_file() or (folder / LEDGER_FILE).is_file()


def site_id_of(state: Path) -> str:
    """The site id the STATE belongs to: its cohort manifest, its trail's first actor, else the folder."""
    manifest = state / MANIFEST
    if manifest.is_file():
        return str(json.loads(manifest.read_text(encoding="utf-8"))["site_id"])
    try:
        entries = walk(state / AUDIT_FILE)[1]
    except AuditUnreadable:
        entries = []
    actor = entries[0].actor if entries else ""
    return actor.removeprefix("site:") if actor.startswith("site:") else state.resolve().name


def find_layout(path: Path) -> Layout:
    """A run folder (``state/`` and ``coordinator/``) or a site's STATE (``audit.db`` or ``ledger.db``)."""
    path = Path(path)
    if (path / "state").is_dir() and (path / "coordinator").is_dir():
        states = {site_id_of(s): s for s in sorted((path / "state").iterdir()) if s.is_dir() and _is_state(s)}
        if not states:
            raise FileNotFoundError(f"{path / 'state'}: no site state in it (no audit.db or ledger.db); "
                                    "run `polyclinic demo --out DIR` or a federated study first")
        model = path / "model" / "model.pt"
        return Layout("run", path, states, path / "coordinator", model if model.is_file() else None)
    if _is_state(path):
        return Layout("site", path, {site_id_of(path): path}, None, None)
    raise FileNotFoundError(f"{path}: neither a run folder (with state/ and coordinator/) nor a site STATE "
                            "(with audit.db or ledger.db); give the demo's --out folder or a site's state")


def audit_status(db: Path, *, coordinator: Path | None = None,
                 site_id: str | None = None) -> tuple[AuditStatus, list[Entry]]:
    """Verification of one trail (and, for a site of a run, its cross-check with the coordinator)."""
    try:
        result, entries = walk(db)
    except AuditUnreadable as exc:
        return AuditStatus(path=str(db), ok=False, entries=0, head=None, first_bad=None, problem="unreadable",
                           message=str(exc), key_fingerprint=None, key_pinned=False, events={},
                           status="tampered"), []
    anchors = None
    if coordinator is not None and site_id is not None:
        # the coordinator's own problems are its status; keep what concerns this site's trail
        try:
            problems = check_anchors(db, coordinator / AUDIT_FILE, site_id)
        except AuditUnreadable as exc:  # no coordinator trail to check against: said in its own status
            problems = [Problem("unanchored", None, f"cannot cross-check: {exc}", str(coordinator))]
        anchors = [vars(p) for p in problems if p.trail == str(db) or p.code == "unanchored"]
    events: dict[str, int] = {}
    for entry in entries:
        events[entry.event] = events.get(entry.event, 0) + 1
    return AuditStatus(**result.to_json(), anchor_problems=anchors, events=events,
                       status=trail_status(result.ok, anchors)), entries


def _latest_walk(entries: list[Entry]) -> list[Entry]:
    """The latest walk over the data: after the one-but-last ``consent.decided``, up to the last."""
    decided = [i for i, e in enumerate(entries) if e.event == "consent.decided"]
    if not decided:
        return []
    start = decided[-2] + 1 if len(decided) > 1 else 0
    return entries[start:decided[-1] + 1]


def _last(entries: list[Entry], event: str) -> dict[str, Any] | None:
    found = [e for e in entries if e.event == event]
    return found[-1].details_dict() if found else None


def consent_funnel(entries: list[Entry]) -> ConsentFunnel | None:
    batch = _latest_walk(entries)
    if not batch:
        return None
    decided = batch[-1].details_dict()
    discovered = [e.details_dict()["patients"] for e in batch if e.event == "data.discovered"]
    trained = _last(entries, "training.round")
    return ConsentFunnel(policy=decided["policy"], discovered=max(discovered, default=decided["included"]
                                                                  + decided["excluded"]),
                         decisions=decided["decisions"], excluded=decided["excluded"],
                         included=decided["included"], trained=trained["examples"] if trained else None,
                         round=decided.get("round"))


def data_facts(entries: list[Entry]) -> dict[str, DataFacts]:
    """Per modality, items found, accepted and rejected by reason in the latest walk."""
    facts: dict[str, dict[str, Any]] = {}
    for entry in _latest_walk(entries):
        details = entry.details_dict()
        if not entry.event.startswith("data."):
            continue
        fact = facts.setdefault(details["modality"], {"discovered": 0, "accepted": 0, "rejected": {}})
        if entry.event == "data.rejected":
            fact["rejected"] = details["reasons"]
        else:
            fact[entry.event.removeprefix("data.")] = details["items"]
    return {m: DataFacts(**f) for m, f in sorted(facts.items())}


def privacy_facts(state: Path, budget: Budget, entries: list[Entry]) -> PrivacyFacts:
    """Epsilon spent from the ledger at the budget's delta (else the delta the spends were recorded at)."""
    spends = PrivacyLedger.for_state(state).spends() if (state / LEDGER_FILE).is_file() else []
    trained = _last(entries, "training.round")
    delta = budget.delta if budget.delta is not None else (spends[-1].delta if spends else None)
    spent = PrivacyLedger.for_state(state).spent(delta) if spends and delta is not None else 0.0
    remaining = None if budget.epsilon is None else max(budget.epsilon - spent, 0.0)
    return PrivacyFacts(epsilon_spent=spent, delta=delta, epsilon_budget=budget.epsilon,
                        budget_source=budget.source, epsilon_remaining=remaining,
                        over_budget=budget.epsilon is not None and spent > budget.epsilon,
                        spends=[SpendRow(**vars(s)) for s in spends],
                        audit_epsilon_total=trained.get("epsilon_total") if trained else None)


def gdpr_facts(state: Path, delta: float | None) -> GdprFacts | None:
    """Access requests and erasures from ``STATE/gdpr.db``, each erasure with its residual DP bound."""
    if not (state / GDPR_FILE).is_file():
        return None
    requests = RequestRegister.for_state(state).requests()
    spends = PrivacyLedger.for_state(state).spends() if (state / LEDGER_FILE).is_file() else []
    usage = UsageRegister.for_state(state)
    erasures = []
    for request in (r for r in requests if r.kind == "erasure"):
        _, bound = residual_bound(usage.rounds_for(request.pseudonym), spends,
                                  delta if delta is not None else (spends[-1].delta if spends else 0.0))
        erasures.append(ErasureFact(erased_at=request.created_at, rounds_used=bound.rounds,
                                    residual_epsilon=bound.epsilon, residual_delta=bound.delta,
                                    statement=bound.statement()))
    return GdprFacts(access_requests=sum(r.kind == "access" for r in requests), erasures=erasures)


def checkpoint_history(coordinator: Path) -> list[dict[str, Any]]:
    """The per-round history of the newest checkpoint (``server/checkpoint.py``), or [] without one."""
    found = sorted((int(m.group(1)), p) for p in (coordinator / "checkpoints").glob("round-*.pt")
                   if (m := _CHECKPOINT.match(p.name)))
    return list(torch.load(found[-1][1], weights_only=True)["history"]) if found else []


def history_budget(history: list[dict[str, Any]], site_id: str) -> Budget | None:
    """The budget the site last reported to the coordinator (for a STATE without its site.toml)."""
    reported = [r["metrics"] for e in history for r in e["train"]
                if r["site"] == site_id and "epsilon-budget" in r["metrics"]]
    if not reported:
        return None
    return Budget(reported[-1]["epsilon-budget"], reported[-1].get("delta"), "checkpoint history")


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def model_facts(root: Path, history: list[dict[str, Any]]) -> ModelFacts:
    card_file = root / "model" / "model-card.json"
    card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    rounds = [RoundFacts(
        round=e["round"],
        trained={r["site"]: r["metrics"]["epsilon-spent"] for r in e["train"]
                 if "epsilon-spent" in r["metrics"]},
        refused={r["site"]: r["refused"] or "error" for r in e["train"] if r["refused"] or r["error"]},
        auroc=_number(e["aggregated"].get("auroc")), loss=_number(e["aggregated"].get("loss")))
        for e in history]
    return ModelFacts(run_id=card.get("training", {}).get("run_id"),
                      fusion=card.get("model", {}).get("fusion"), rounds=rounds)
