"""Which FHIR release a resource is written in, decided from its content.

fhir.resources 8 ships R5 (``fhir.resources.<module>``) and R4B (``fhir.resources.R4B.<module>``) and no
R4 package; R4 and R4B share the resources used here, so R4 content is read with the R4B models.
JSON carries no release marker, so the release is decided per resource, in two steps:

1. Each resource is validated against both releases' models; the releases whose model accepts it are
   its candidates. Release-specific content settles it: an R5 ``Consent`` with ``decision``/``subject``
   or a ``provision`` list fails R4B, an R4 ``Consent`` with ``scope``/``patient``/``policyRule`` fails
   R5, an R4 ``Condition`` with ``asserter`` fails R5. No candidate means an invalid resource.
2. A resource valid in both (most Patients and Observations) takes its patient's release: the majority
   of that patient's single-release resources; with no such resource, or a tie, the majority over the
   whole records folder (a site exports one release, and a patient with nothing release-specific
   should not stand out), and failing that :data:`DEFAULT_RELEASE`. Deciding per patient rather than
   per file matters for bulk exports, where ``Patient.ndjson`` holds nothing release-specific and
   ``Consent.ndjson`` does.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from fhir.resources import get_fhir_model_class as _r5_class
from fhir.resources.R4B import get_fhir_model_class as _r4b_class
from fhir.resources.R4B.resource import Resource as _R4BResource
from fhir.resources.resource import Resource as _R5Resource
from pydantic import ValidationError

Release = Literal["R5", "R4B"]
RELEASES: tuple[Release, ...] = ("R5", "R4B")
DEFAULT_RELEASE: Release = "R4B"
"""R4 is what hospital systems export today (US Core is R4); R5-only content announces itself."""

USED_TYPES = ("Patient", "Observation", "Condition", "Consent")
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_LISTED_ERRORS = 6
_LOOKUP = {"R5": (_r5_class, _R5Resource), "R4B": (_r4b_class, _R4BResource)}


def model_class(release: Release, type_name: str) -> type | None:
    """The fhir.resources class for a resource type in one release, or None if it has no such resource."""
    if not _TYPE_NAME.match(type_name):
        return None
    lookup, base = _LOOKUP[release]
    try:
        cls = lookup(type_name)
    except ValueError:
        return None
    return cls if issubclass(cls, base) else None


def is_resource_type(type_name: str) -> bool:
    """Whether any supported release defines this resource type (data types like Quantity are not)."""
    return any(model_class(release, type_name) is not None for release in RELEASES)


def validate(raw: dict[str, Any]) -> tuple[dict[Release, Any], str]:
    """The models of every release that accepts ``raw``, and (when none does) why, without input values.

    pydantic's own error text echoes the offending input (``input_value=...``), which may be a name or
    a record number, so only element paths and error kinds are reported, for the closest release.
    """
    models: dict[Release, Any] = {}
    problems: dict[Release, list[str]] = {}
    for release in RELEASES:
        cls = model_class(release, raw["resourceType"])
        if cls is None:
            problems[release] = ["resourceType (not defined in this release)"]
            continue
        try:
            models[release] = cls.model_validate(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            problems[release] = [f"{_path(e['loc'])} ({e['type']})" for e in errors] or ["(unknown)"]
        except (ValueError, TypeError, RecursionError) as exc:  # validators that do not wrap their errors
            problems[release] = [f"(validation failed: {type(exc).__name__})"]
    if models:
        return models, ""
    release, listed = min(problems.items(), key=lambda kv: len(kv[1]))
    more = len(listed) - _MAX_LISTED_ERRORS
    text = "; ".join(listed[:_MAX_LISTED_ERRORS]) + (f"; and {more} more" if more > 0 else "")
    return {}, f"closest release {release}: {text}"


def _path(loc: Iterable[Any]) -> str:
    parts = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append("." + (part if _FIELD_NAME.match(str(part)) else "?"))
    return "".join(parts).lstrip(".") or "(resource)"


def choose_release(candidates: Iterable[frozenset[Release]], default: Release = DEFAULT_RELEASE) -> Release:
    """The majority release among resources valid in one release only; ``default`` when none or tied."""
    votes = Counter(next(iter(c)) for c in candidates if len(c) == 1)
    ranked = votes.most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return default
    return ranked[0][0]


def release_of(model: Any) -> Release:
    """The release a fhir.resources model belongs to, from the package it comes from."""
    return "R4B" if type(model).__module__.startswith("fhir.resources.R4B.") else "R5"
