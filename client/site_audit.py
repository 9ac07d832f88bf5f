"""What a site's audit trail says about one walk over its data: counts and reason codes, never patients.

Written after every ``Site.run`` that builds the cohort (``polyclinic site prepare``, the demo, and the
start of every federated round), so an auditor can follow, round by round, what the site found, what it
rejected and why, how consent was decided and what went into the cache.
"""

from __future__ import annotations

from pathlib import Path

from client.site_report import SiteReport
from compliance.audit import AuditTrail


def site_trail(state: Path, site_id: str) -> AuditTrail:
    """The site's trail, ``STATE/audit.db``, signed with the site's key."""
    return AuditTrail.for_state(state, actor=f"site:{site_id}")


def record_site_run(trail: AuditTrail, report: SiteReport, *, round: int | None = None) -> None:
    """Discovered, accepted and rejected items per modality, consent decisions and the cache."""
    patients = report.patients
    for modality, counts in report.modalities.items():
        used_by = sum(n for combination, n in patients.by_combination.items()
                      if modality in combination.split("+"))
        trail.append("data.discovered", {"modality": modality, "items": counts.found,
                                         "patients": patients.discovered})
        trail.append("data.accepted", {"modality": modality, "items": counts.accepted, "patients": used_by})
        if counts.rejected:
            trail.append("data.rejected", {"modality": modality, "items": sum(counts.rejected.values()),
                                           "reasons": dict(counts.rejected)})
    consent = {"policy": report.consent_policy, "decisions": dict(patients.consent_excluded),
               "included": patients.included, "excluded": sum(patients.consent_excluded.values())}
    trail.append("consent.decided", consent if round is None else {**consent, "round": round})
    if patients.consent_withdrawn:
        withdrawn = {"patients": patients.consent_withdrawn}
        trail.append("consent.withdrawn", withdrawn if round is None else {**withdrawn, "round": round})
    if report.cache is not None:
        trail.append("cache.built", {"patients": patients.included, "built": report.cache.written,
                                     "reused": report.cache.reused, "pruned": report.cache.pruned})
