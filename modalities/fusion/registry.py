"""Fusion variants behind one interface, found by name (the study's ``fusion.fusion``).

A variant is an ``nn.Module`` built as ``cls(settings, token_counts)`` whose forward takes the
per-modality tokens and the ``(B, M)`` presence masks and returns a :class:`FusionOutput`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from modalities.fusion.settings import FusionSettings


@dataclass(frozen=True)
class FusionOutput:
    """``logits`` ``(B,)``; ``mass`` ``(B, M)``: each modality's share of the attention or gated update
    for each sample (rows sum to 1 where anything is present), or ``None`` for a variant with none."""

    logits: torch.Tensor
    mass: torch.Tensor | None = None


_REGISTRY: dict[str, type[nn.Module]] = {}
Variant = TypeVar("Variant", bound=type[nn.Module])


def register_fusion(name: str, *, force: bool = False) -> Callable[[Variant], Variant]:
    """Class decorator adding a fusion variant; refuses to replace another class unless ``force``."""

    def add(cls: Variant) -> Variant:
        if name in _REGISTRY and _REGISTRY[name] is not cls and not force:
            raise ValueError(f"fusion {name!r} is already registered by {_REGISTRY[name].__qualname__}; "
                             "pass force=True to replace it")
        _REGISTRY[name] = cls
        return cls

    return add


def fusion_names() -> list[str]:
    """Registered fusion variants, in registration order."""
    return list(_REGISTRY)


def create_fusion(name: str, settings: FusionSettings, token_counts: tuple[int, ...]) -> nn.Module:
    """The variant ``name`` for modalities producing ``token_counts`` tokens each."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown fusion {name!r}; registered: {', '.join(_REGISTRY) or 'none'}") from None
    return cls(settings, token_counts)

