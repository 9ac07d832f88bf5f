"""Whether a patient's FHIR Consents allow research use of their data at a given moment.

The rule (minimal for now; restrictions by actor, data and labels are refined later):

1. Only Consents with status ``active`` count (an ``inactive`` or R4 ``rejected`` consent is withdrawn);
   an R5 ``Consent.period`` must cover the moment ``at``.
2. A Consent states one decision under conditions. R4/R4B: the root ``provision`` is the condition
   set; its effect is its ``type`` or, as in the HL7 examples that leave it out, ``deny`` under an
   ``OPTOUT`` policy rule and ``permit`` otherwise (no root provision: unconditional). R5:
   ``Consent.decision`` (``permit`` if absent) applies to each top-level ``provision`` (alternative
   condition sets; none: unconditional), the R4 root ``type`` having moved to ``decision`` in R5.
   Nested provisions are exceptions: R4 states their ``type``; R5 (and R4 without a type) flips the
   parent's effect.
3. A provision applies to our request (research use at ``at``) when its ``period`` covers ``at`` and
   its ``purpose`` is absent or names research (v3-ActReason HRESCH and its specialisations, or RESCH).
   Being cautious, a *permit* narrowed to particular actors, data, classes, codes or security labels
   does not apply (we cannot show the narrowing covers us), while a *deny* so narrowed does.
4. A consent's verdict is its deepest applicable provision (an applicable exception overrides its
   parent; among applicable siblings deny wins); a consent whose conditions do not apply says nothing.
5. A deny verdict is an objection, unless the consent is about treatment or an advance directive and
   names no research purpose. A permit verdict counts only when research is named on its path or the
   consent is a research consent (scope or category ``research``).

Any objection excludes the patient (``consent.denied``). Under ``opt-in`` a research permit is needed
(``consent.permitted``, else ``consent.no-permit``); under ``opt-out`` the patient is included unless
they objected (``consent.permitted`` when a permit exists, else ``consent.not-objected``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from modalities.records.dates import covers
from modalities.records.releases import release_of

Policy = Literal["opt-in", "opt-out"]
POLICIES: tuple[str, ...] = ("opt-in", "opt-out")
CODES: dict[str, str] = {
    "consent.denied": "an active consent objects to research use at this time",
    "consent.no-permit": "the site is opt-in and no active consent permits research use at this time",
    "consent.permitted": "an active consent permits research use at this time",
    "consent.not-objected": "the site is opt-out and no active consent objects to research use",
}

ACT_REASON_SYSTEMS = frozenset(
    {"http://terminology.hl7.org/CodeSystem/v3-ActReason", "http://hl7.org/fhir/v3/ActReason"}
)
RESEARCH_PURPOSES = frozenset(
    "HRESCH RESCH BIORCH CLINTRCH CLINTRCHNPC CLINTRCHPC PRECLINTRCH DSRCH POARCH TRANSRCH".split()
)
"""v3-ActReason healthcare research and its specialisations (clinical trial, biomedical, ...), and RESCH."""
CONSENT_CODE_SYSTEMS = frozenset(
    {
        "http://terminology.hl7.org/CodeSystem/consentscope",
        "http://terminology.hl7.org/CodeSystem/consentcategorycodes",
    }
)
NOT_ABOUT_DATA = frozenset({"treatment", "adr", "acd", "dnr", "polst", "hcd"})
"""Consent scopes and categories about care itself: their denials refuse a treatment, not research."""
OPT_OUT_RULES = frozenset({"OPTOUT", "OPTOUTE"})
NARROWING = ("actor", "data", "class_fhir", "code", "securityLabel", "documentType", "resourceType")


@dataclass(frozen=True)
class ConsentDecision:
    allowed: bool
    code: str
    reason: str


def _codes(concepts: Iterable[Any], systems: frozenset[str]) -> set[str]:
    return {c.code for concept in concepts for c in (concept.coding or []) if c.system in systems and c.code}


def _names_research(purposes: Iterable[Any] | None) -> bool:
    return any(p.system in ACT_REASON_SYSTEMS and p.code in RESEARCH_PURPOSES for p in purposes or [])


def _applies(provision: Any, effect: str, at: dt.datetime) -> bool:
    period = provision.period
    if period is not None and not covers(period.start, period.end, at):
        return False
    if provision.purpose and not _names_research(provision.purpose):
        return False
    return effect == "deny" or not any(getattr(provision, name, None) for name in NARROWING)


def _flip(effect: str) -> str:
    return "deny" if effect == "permit" else "permit"


def _strongest(verdicts: list[tuple[str, bool]]) -> tuple[str, bool]:
    """Deny before permit; among permits, one that names research."""
    return min(verdicts, key=lambda v: (v[0] != "deny", not v[1]))


def _deepest(provision: Any, effect: str, research: bool, at: dt.datetime) -> tuple[str, bool]:
    """(effect, research named) under an applicable provision: its own, unless an exception applies."""
    research = research or _names_research(provision.purpose)
    found = []
    for exception in provision.provision or []:
        own = getattr(exception, "type", None) or _flip(effect)
        if _applies(exception, own, at):
            found.append(_deepest(exception, own, research, at))
    return _strongest(found) if found else (effect, research)


def _consent_verdict(consent: Any, at: dt.datetime) -> str | None:
    """``"deny"``, ``"permit"`` (a research permit) or None when the consent says nothing about research."""
    if consent.status != "active":
        return None
    concepts = list(consent.category or [])
    if release_of(consent) == "R4B":
        concepts += [consent.scope] if consent.scope is not None else []
        rule = consent.policyRule
        opts_out = rule is not None and any(c.code in OPT_OUT_RULES for c in rule.coding or [])
        root = consent.provision
        effect = (root.type if root is not None else None) or ("deny" if opts_out else "permit")
        conditions = [root] if root is not None else []
    else:
        if consent.period is not None and not covers(consent.period.start, consent.period.end, at):
            return None
        effect, conditions = consent.decision or "permit", consent.provision or []
    kinds = {code.lower() for code in _codes(concepts, CONSENT_CODE_SYSTEMS)}
    research = "research" in kinds
    if conditions:
        found = [_deepest(c, effect, research, at) for c in conditions if _applies(c, effect, at)]
        if not found:
            return None
        effect, research = _strongest(found)
    if effect == "deny":
        return None if kinds & NOT_ABOUT_DATA and not research else "deny"
    return "permit" if research else None


def decide(consents: Iterable[Any], policy: Policy, at: dt.datetime) -> ConsentDecision:
    """The patient's decision for research use at ``at`` under the site's policy (see the module rule)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown consent policy {policy!r}; use one of: {', '.join(POLICIES)}")
    consents = list(consents)
    verdicts = [v for v in (_consent_verdict(c, at) for c in consents) if v is not None]
    if "deny" in verdicts:
        code = "consent.denied"
    elif "permit" in verdicts:
        code = "consent.permitted"
    else:
        code = "consent.no-permit" if policy == "opt-in" else "consent.not-objected"
    reason = f"{CODES[code]} ({len(verdicts)} of {len(consents)} consents speak to research use)"
    return ConsentDecision(code in ("consent.permitted", "consent.not-objected"), code, reason)
