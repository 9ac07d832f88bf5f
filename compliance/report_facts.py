"""What the auditor's report states, as typed, JSON-able facts: ``report.json`` is exactly this model.

The HTML page is rendered from these facts and nothing else, so whatever the page shows can be checked
against ``report.json``, and ``report.json`` against the ledgers and trails it was read from. Every field
is a count, a rate, a code, a digest, a site id or a path: the models forbid extra fields, so nothing
about a patient can be slipped in. Subgroup figures come from fairness tables that already withheld
every cell under ``k`` patients (``compliance.fairness``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from compliance.fairness import FairnessTable

REPORT_VERSION = 1


class Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SpendRow(Fact):
    """One row of the site's privacy ledger (``privacy.ledger.Spend``), as recorded."""

    run_id: str
    round: int
    epsilon_after: float
    delta: float
    steps: int
    noise_multiplier: float
    sample_rate: float
    mechanism: str
    created_at: str


class PrivacyFacts(Fact):
    epsilon_spent: float
    """The ledger's whole history at ``delta`` (``PrivacyLedger.spent(delta)``)."""
    delta: float | None
    epsilon_budget: float | None
    budget_source: str
    """Where the budget came from: ``site.toml``, the checkpoint history, or ``unknown``."""
    epsilon_remaining: float | None
    over_budget: bool
    spends: list[SpendRow]
    audit_epsilon_total: float | None
    """``epsilon_total`` of the latest verified ``training.round`` entry: should equal the ledger's."""


class AuditStatus(Fact):
    """``compliance.audit_verify.VerifyResult.to_json()`` plus the anchor cross-check of a site."""

    path: str
    ok: bool
    entries: int
    head: dict[str, int | str] | None
    first_bad: int | None
    problem: str | None
    message: str
    key_fingerprint: str | None
    key_pinned: bool
    anchor_problems: list[dict[str, Any]] | None = None
    """``check_anchors`` problems (code, sequence, message, trail); None where there is no coordinator."""
    events: dict[str, int]
    """Verified entries per event type."""
    status: Literal["intact", "tampered", "unanchored"]
    """``tampered``: the trail or its cross-check fails; ``unanchored``: intact, nothing to cross-check."""


def trail_status(ok: bool, anchor_problems: list[dict[str, Any]] | None) -> Literal["intact", "tampered",
                                                                                  "unanchored"]:
    anchors = anchor_problems or []
    if not ok or any(p["code"] != "unanchored" for p in anchors):
        return "tampered"
    return "unanchored" if anchors else "intact"


class ConsentFunnel(Fact):
    """The latest walk over the site's data, from its trail: counts by decision code, never patients."""

    policy: str
    discovered: int
    decisions: dict[str, int]
    """Excluded patients by consent decision code (``consent.decided``)."""
    excluded: int
    included: int
    trained: int | None
    """Examples of the latest ``training.round`` (the training split; validation patients are not in it)."""
    round: int | None
    """The round whose walk this is; None for a ``site prepare``."""


class DataFacts(Fact):
    """Items per modality of the latest walk (``data.discovered``/``accepted``/``rejected``)."""

    discovered: int
    accepted: int
    rejected: dict[str, int]
    """Rejected items by reason code."""


class FairnessFacts(Fact):
    source: str
    table: FairnessTable
    """Published cells only: every group has at least ``table.k`` patients."""

    def figures(self) -> dict[str, dict[str, dict[str, float | int | None]]]:
        """Attribute -> group -> figure name -> value, as shown in the report."""
        return {a: {g: vars(m) for g, m in groups.items()} for a, groups in self.table.metrics().items()}


class ErasureFact(Fact):
    """One Art. 17 erasure: when, how many released rounds had used the patient, and the DP bound on the
    influence those rounds can still carry (no pseudonym: the report is for auditors, not for lookups)."""

    erased_at: str
    rounds_used: int
    residual_epsilon: float
    residual_delta: float
    statement: str


class GdprFacts(Fact):
    access_requests: int
    erasures: list[ErasureFact]


class SiteFacts(Fact):
    site: str
    state: str
    privacy: PrivacyFacts
    audit: AuditStatus
    consent: ConsentFunnel | None
    data: dict[str, DataFacts]
    fairness: FairnessFacts | None
    fairness_note: str | None = None
    gdpr: GdprFacts | None = None


class RoundFacts(Fact):
    """One round of the coordinator's checkpoint history: who trained, who refused and why."""

    round: int
    trained: dict[str, float]
    """Site -> epsilon spent after the round, as the site reported it."""
    refused: dict[str, str]
    """Site -> refusal code (or ``error``)."""
    auroc: float | None
    loss: float | None


class ModelFacts(Fact):
    run_id: str | None
    fusion: str | None
    rounds: list[RoundFacts]


class ReportFacts(Fact):
    version: Literal[1] = REPORT_VERSION
    kind: Literal["run", "site"]
    source: str
    generated_at: str
    study: str
    sites: list[SiteFacts]
    coordinator: AuditStatus | None
    model: ModelFacts | None
    federated_fairness: FairnessFacts | None
    processing_record: dict[str, Any] | None
    notes: list[str]
    """Fallbacks taken and data that was missing, one sentence each."""
    problems: list[str]
    """What an auditor must act on: tampered trails, budgets overspent, ledger and trail disagreeing."""

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
