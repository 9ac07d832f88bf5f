"""What a site tells the coordinator before it is asked to train: how many patients it can use, how many
items each modality accepted and rejected, its privacy budget, and whether it would refuse and why.

Counts and budgets only, never a patient-level fact: the coordinator uses it to show the consortium who
is ready and, under secure aggregation, to leave out a site that would refuse (a refusal inside SecAgg+
looks like a dropout and costs the round its threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

from client.cohort import TRAIN, VALIDATION
from client.site_config import PrivacySection
from client.site_report import SiteReport
from privacy.ledger import PrivacyLedger


@dataclass(frozen=True)
class SiteSummary:
    metrics: dict[str, float]
    refusal: str
    """The code a train request would be refused with now (``dp.disabled``, ``site.cohort-empty``,
    ``dp.budget-spent``, ``dp.budget-too-small``, ...); empty when the site would train."""


def site_counts(report: SiteReport, ledger: PrivacyLedger, budget: PrivacySection) -> dict[str, float]:
    """Cohort sizes and modality counts from the site's latest walk (``report``), and its budget."""
    spent = ledger.spent(budget.delta)
    patients = report.patients
    counts = {"patients-included": float(patients.included),
              "patients-train": float(patients.split[TRAIN]),
              "patients-validation": float(patients.split[VALIDATION]),
              "patients-consent-excluded": float(sum(patients.consent_excluded.values())),
              "epsilon-spent": spent, "epsilon-remaining": max(budget.epsilon - spent, 0.0),
              "epsilon-budget": float(budget.epsilon), "delta": float(budget.delta)}
    for name, modality in report.modalities.items():
        counts[f"{name}-accepted"] = float(modality.accepted)
        counts[f"{name}-rejected"] = float(sum(modality.rejected.values()))
    return counts
