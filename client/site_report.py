"""What a site run found, used and set aside: the steward's view, and the counts that may be shared.

Everything but ``rejections`` is counts, codes and pseudonym-free aggregates. ``rejections`` carries
``where`` (paths and resource ids the steward needs to fix files) and is shown locally only: it is
never logged, written to STATE or sent anywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from modalities.base import Rejection


@dataclass
class ModalityCounts:
    found: int = 0
    items: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class PatientCounts:
    discovered: int = 0
    consent_excluded: Counter[str] = field(default_factory=Counter)
    consent_withdrawn: int = 0
    """Of ``consent_excluded``, those who were in the previously prepared cohort (withdrew since)."""
    excluded: Counter[str] = field(default_factory=Counter)
    included: int = 0
    positives: int = 0
    by_combination: Counter[str] = field(default_factory=Counter)
    split: Counter[str] = field(default_factory=Counter)

    @property
    def prevalence(self) -> float | None:
        return self.positives / self.included if self.included else None


@dataclass
class CacheCounts:
    written: int = 0
    reused: int = 0
    pruned: int = 0


@dataclass
class SiteReport:
    site_id: str
    config_defaulted: bool
    consent_policy: str
    modalities: dict[str, ModalityCounts] = field(default_factory=dict)
    patients: PatientCounts = field(default_factory=PatientCounts)
    cache: CacheCounts | None = None
    rejections: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    def reject(self, modality: str, rejection: Rejection) -> None:
        self.rejections.append(rejection)
        self.modalities[modality].rejected[rejection.code] += 1

    def counts(self) -> dict[str, Any]:
        """The aggregate part: safe to log and to keep in STATE (no paths, no identifiers)."""
        data = _plain(self)
        data.pop("rejections")
        data["patients"]["prevalence"] = self.patients.prevalence
        return data

    def to_json(self) -> dict[str, Any]:
        """The steward's full view, for ``--json``: the counts plus every rejection with its location."""
        return {**self.counts(), "rejections": [asdict(r) for r in self.rejections]}


def _plain(value: Any) -> Any:
    """JSON-ready copy; unlike ``dataclasses.asdict`` it keeps a Counter's keys (asdict rebuilds a
    Counter from its (key, count) pairs, counting the pairs)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
