"""The privacy step between reading an item and computing its features, one per modality.

De-identifiers are registered by modality name (the Opacus registry pattern), so the Site applies
the right one without modalities knowing about privacy, and a modality with no de-identifier is an
error rather than a silent pass-through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from privacy.pseudonym import Pseudonymiser


@dataclass(frozen=True)
class DeidContext:
    """What a de-identifier may use: the site's pseudonymiser, the patient's pseudonym, the index date."""

    pseudonymiser: Pseudonymiser
    pseudonym: str
    index_date: dt.date


Deidentifier = Callable[[Any, DeidContext], Any]
_REGISTRY: dict[str, Deidentifier] = {}


def register_deidentifier(modality: str, *, force: bool = False) -> Callable[[Deidentifier], Deidentifier]:
    """Decorator registering ``fn(content, ctx) -> content`` for one modality; no silent overwrite."""

    def decorate(fn: Deidentifier) -> Deidentifier:
        if modality in _REGISTRY and _REGISTRY[modality] is not fn and not force:
            raise ValueError(f"a de-identifier for {modality!r} is already registered; pass force=True")
        _REGISTRY[modality] = fn
        return fn

    return decorate


def deidentify(modality: str, content: Any, ctx: DeidContext) -> Any:
    """Apply the modality's de-identifier; refuses modalities that have none."""
    try:
        fn = _REGISTRY[modality]
    except KeyError:
        raise LookupError(f"no de-identifier registered for modality {modality!r}; nothing of it may be "
                          f"cached (registered: {', '.join(_REGISTRY) or 'none'})") from None
    return fn(content, ctx)
