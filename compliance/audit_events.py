"""What an audit entry may say: the event types, each with typed detail fields, checked at append time.

The trail is read by auditors and exported as FHIR, so it must never carry identifying values. Rather
than scanning free text for names (which cannot be done reliably), details have no free text at all:
every event lists its fields and each field has a kind that admits only numbers, booleans, short
lowercase codes, hex digests, pseudonyms, site ids or counts keyed by codes. A name, an MRN with
capitals, a date, a path or a sentence does not fit any kind and is refused before anything is written.
What this cannot tell apart is a single lowercase word used as a code; the field names keep codes to
places where a code is expected (a reason, a modality, a policy).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_CODE = re.compile(r"[a-z][a-z0-9]*(?:[._:-][a-z0-9]+)*")
_DIGEST = re.compile(r"[0-9a-f]{16,128}")
_PSEUDONYM = re.compile(r"p-[0-9a-f]{24}")
_SITE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")  # client/site_config.py's site id pattern
MAX_CODE = 64
MAX_COUNTS = 256


class AuditDetailsError(ValueError):
    """An entry's event type or details are not allowed; nothing was written."""


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_code(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_CODE and _CODE.fullmatch(value) is not None


def _is_counts(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) <= MAX_COUNTS
            and all(_is_code(k) and _is_count(v) for k, v in value.items()))


KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "count": (_is_count, "a whole number >= 0"),
    "number": (_is_number, "a finite number"),
    "flag": (lambda v: isinstance(v, bool), "true or false"),
    "code": (_is_code, f"a lowercase code such as 'imaging.no-pixels' (at most {MAX_CODE} characters)"),
    "digest": (lambda v: isinstance(v, str) and _DIGEST.fullmatch(v) is not None,
               "a lowercase hex digest of 16 to 128 digits"),
    "pseudonym": (lambda v: isinstance(v, str) and _PSEUDONYM.fullmatch(v) is not None,
                  "a patient pseudonym 'p-' + 24 hex digits (never a raw identifier)"),
    "site": (lambda v: isinstance(v, str) and _SITE.fullmatch(v) is not None, "a site id"),
    "counts": (_is_counts, "an object of lowercase codes to whole numbers >= 0"),
}
"""Field kind -> (check, what it admits)."""


@dataclass(frozen=True)
class EventSpec:
    description: str
    action: str
    """FHIR AuditEvent.action: C create, R read, U update, D delete, E execute."""
    fields: Mapping[str, str]
    optional: frozenset[str] = field(default_factory=frozenset)


EVENTS: dict[str, EventSpec] = {
    "trail.created": EventSpec("the trail was started with this signing key", "C", {"key": "digest"}),
    "data.discovered": EventSpec("items found in one modality", "R",
                                 {"modality": "code", "items": "count", "patients": "count"}),
    "data.accepted": EventSpec("items of one modality usable for the study", "R",
                               {"modality": "code", "items": "count", "patients": "count"}),
    "data.rejected": EventSpec("items of one modality not used, by reason code", "R",
                               {"modality": "code", "items": "count", "reasons": "counts"}),
    "consent.decided": EventSpec("consent decisions under the site policy, by decision code", "E",
                                 {"policy": "code", "decisions": "counts", "included": "count",
                                  "excluded": "count", "round": "count"}, frozenset({"round"})),
    "consent.withdrawn": EventSpec("patients excluded because consent was withdrawn", "E",
                                   {"patients": "count", "round": "count"}, frozenset({"round"})),
    "cache.built": EventSpec("the de-identified feature cache was built", "C",
                             {"patients": "count", "built": "count", "reused": "count", "pruned": "count"},
                             frozenset({"built", "reused", "pruned"})),
    "training.round": EventSpec("one round of DP training; the update's digest is what was sent", "E",
                                {"round": "count", "epsilon": "number", "epsilon_total": "number",
                                 "delta": "number", "examples": "count", "update": "digest"},
                                frozenset({"epsilon_total", "delta"})),
    "training.refused": EventSpec("a round was not trained, by reason code", "E",
                                  {"round": "count", "reason": "code"}),
    "model.received": EventSpec("global weights arrived from the coordinator", "R",
                                {"round": "count", "model": "digest"}),
    "model.aggregated": EventSpec("the coordinator aggregated one round", "C",
                                  {"round": "count", "sites": "count", "examples": "count",
                                   "model": "digest"},
                                  frozenset({"examples"})),
    "report.generated": EventSpec("an auditor report was written", "C",
                                  {"kind": "code", "report": "digest"}, frozenset({"kind"})),
    "gdpr.access": EventSpec("a GDPR Art. 15 access request was served", "R",
                             {"patient": "pseudonym", "items": "count"}, frozenset({"items"})),
    "gdpr.erasure": EventSpec("a GDPR Art. 17 erasure: the patient is excluded from now on", "D",
                              {"patient": "pseudonym", "items": "count"}, frozenset({"items"})),
    "anchor": EventSpec("the coordinator recorded a site's chain head", "E",
                        {"site": "site", "sequence": "count", "hash": "digest", "round": "count"},
                        frozenset({"round"})),
    "anchor.received": EventSpec("the site recorded the coordinator's chain head", "E",
                                 {"sequence": "count", "hash": "digest", "round": "count"},
                                 frozenset({"round"})),
}
"""Every event type a trail accepts. ``fields`` are required unless named in ``optional``."""


def check_actor(actor: str) -> str:
    """The actor is a code too (``site:hospital-a``, ``coordinator``): never a person's name."""
    if not _is_code(actor):
        raise AuditDetailsError(f"audit actor {actor!r} is not allowed: use a lowercase code such as "
                                "'site:hospital-a' or 'coordinator', never a person's name")
    return actor


def canonical_details(event: str, details: Mapping[str, Any]) -> str:
    """``details`` checked against ``event``'s fields, as compact sorted JSON (the text that is hashed)."""
    spec = EVENTS.get(event)
    if spec is None:
        raise AuditDetailsError(f"unknown audit event {event!r}; known events: {', '.join(sorted(EVENTS))}")
    unknown = sorted(set(details) - set(spec.fields))
    if unknown:
        raise AuditDetailsError(f"audit event {event!r}: unknown detail field(s) {unknown}; "
                                f"allowed: {sorted(spec.fields)}")
    missing = sorted(set(spec.fields) - set(details) - spec.optional)
    if missing:
        raise AuditDetailsError(f"audit event {event!r}: missing detail field(s) {missing}")
    for name, value in details.items():
        check, admits = KINDS[spec.fields[name]]
        if not check(value):
            shown = value if isinstance(value, int | float | bool) else f"a {type(value).__name__}"
            raise AuditDetailsError(f"audit event {event!r}: field {name!r} must be {admits}, got {shown} "
                                    "(audit details never carry free text or identifying values)")
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
