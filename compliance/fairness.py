"""Subgroup fairness of a site's validation predictions, with small-cell suppression, and its federated merge.

At a site, :func:`site_fairness` cuts the validation patients by each sensitive attribute (sex, age
band, ethnicity; a missing value is the group ``"unknown"``) and keeps per group a count table
(:class:`~compliance.fairness_counts.CellCounts`). Groups with fewer than ``k`` patients, and the
groups that would give them away (see :mod:`compliance.fairness_suppression`), are dropped before the
object exists: neither their counts nor their labels are in it, only how many cells and patients
were withheld, so whatever :meth:`FairnessTable.to_json` sends is safe by construction.

Per group: n, prevalence, AUROC (exact at the site from the scores; binned after a merge, with its
error bound), TPR, FPR, PPV and expected calibration error. Per attribute, over the published groups
only (a gap over all groups would leak the withheld ones): the demographic parity difference (largest
minus smallest selection rate) and the equalized odds difference (the larger of the TPR gap and the
FPR gap). At the site these come from fairlearn; after a merge the same two quantities are computed
from the summed confusion counts. One deliberate difference from fairlearn's
``equalized_odds_difference``: a group without positives (negatives) has no TPR (FPR), and fairlearn
would count it as 0; here it is left out of that gap. With both classes in every group they agree.

:func:`merge` sums the site tables per attribute and group. A federated cell therefore covers only
the sites where that cell was published; the withheld patients are counted in ``suppressed_n``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Number
from typing import Literal, Self

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    false_positive_rate,
    true_positive_rate,
)
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator
from sklearn.metrics import roc_auc_score

from compliance.fairness_counts import CellCounts, GroupMetrics, rate_gap
from compliance.fairness_suppression import suppressed_groups

UNKNOWN = "unknown"
DEFAULT_K = 10


class AttributeFairness(BaseModel):
    """One sensitive attribute: its published groups and what was withheld."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: dict[str, CellCounts]
    exact_auroc: dict[str, float | None] = {}
    """Per published group, AUROC from the raw scores (site only; None without both classes)."""
    suppressed_cells: NonNegativeInt = 0
    suppressed_n: NonNegativeInt = 0
    demographic_parity_difference: float | None = None
    equalized_odds_difference: float | None = None

    def metrics(self) -> dict[str, GroupMetrics]:
        return {g: GroupMetrics.of(cell, self.exact_auroc.get(g)) for g, cell in sorted(self.groups.items())}


class FairnessTable(BaseModel):
    """Fairness of one site (:class:`SiteFairness`) or of the federation (:class:`FederatedFairness`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    k: int = Field(ge=1)
    threshold: float = Field(gt=0, le=1)
    bins: int = Field(ge=2)
    sites: int = Field(ge=1)
    attributes: dict[str, AttributeFairness]

    @model_validator(mode="after")
    def _no_small_cell(self) -> FairnessTable:
        for attribute, table in self.attributes.items():
            for group, cell in table.groups.items():
                where = f"fairness {attribute}={group!r}"
                if cell.n < self.k:
                    raise ValueError(f"{where}: n={cell.n} is below k={self.k}; the sender must suppress it")
                if len(cell.score_sum) != self.bins:
                    raise ValueError(f"{where}: {len(cell.score_sum)} score bins, the table says {self.bins}")
            if not set(table.exact_auroc) <= set(table.groups):
                raise ValueError(f"fairness {attribute}: exact AUROC given for a group that is not published")
        return self

    def metrics(self) -> dict[str, dict[str, GroupMetrics]]:
        """Attribute -> group -> figures, published groups only."""
        return {a: t.metrics() for a, t in sorted(self.attributes.items())}

    def to_metrics(self, prefix: str = "fairness") -> dict[str, int | float]:
        """Flat ``prefix/attribute/group/figure`` numbers (e.g. for a Flower MetricRecord).

        Undefined figures are left out; ``prefix/attribute/suppressed_cells`` and ``suppressed_n`` say
        what was withheld. For merging, send :meth:`to_json` instead: it keeps the count tables.
        """
        flat: dict[str, int | float] = {}
        for attribute, table in sorted(self.attributes.items()):
            head = f"{prefix}/{attribute}"
            for group, figures in table.metrics().items():
                flat |= {f"{head}/{group}/{name}": value
                         for name, value in vars(figures).items() if value is not None}
            flat[f"{head}/suppressed_cells"] = table.suppressed_cells
            flat[f"{head}/suppressed_n"] = table.suppressed_n
            for name in ("demographic_parity_difference", "equalized_odds_difference"):
                if (value := getattr(table, name)) is not None:
                    flat[f"{head}/{name}"] = value
        return flat

    def to_json(self) -> str:
        """Counts, exact AUROCs and gaps of published cells: numbers, and attribute and group names."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse and check what a site sent (every cell consistent and of at least k patients)."""
        return cls.model_validate_json(text)


class SiteFairness(FairnessTable):
    """Fairness of one site's validation split; built by :func:`site_fairness`."""


class FederatedFairness(FairnessTable):
    """Fairness of the federation, merged from site count tables by :func:`merge`."""


def sensitive_columns(rows: Iterable[Mapping[str, str | None]]) -> dict[str, np.ndarray]:
    """Per-patient attribute dicts (as in the cohort manifest) -> attribute -> array of group labels.

    An attribute missing for a patient, or empty, becomes ``"unknown"``.
    """
    rows = list(rows)
    names = sorted({name for row in rows for name in row})
    return {name: np.asarray([row.get(name) or UNKNOWN for row in rows], dtype=object) for name in names}


def site_fairness(y_true: np.ndarray, y_score: np.ndarray, sensitive: Mapping[str, Sequence[object]], *,
                  k: int = DEFAULT_K, threshold: float = 0.5, bins: int = 10) -> SiteFairness:
    """Count tables, exact AUROCs and fairlearn gaps per attribute and group, small cells withheld.

    ``y_true`` is 0/1, ``y_score`` a probability per patient, ``sensitive`` maps an attribute to one
    group label per patient (already banded: a number is refused so that a raw age cannot leave).
    """
    y_true, y_score = _checked_predictions(y_true, y_score)
    attributes = {}
    for attribute, values in sensitive.items():
        groups = _group_labels(attribute, values, len(y_true))
        labels, sizes = np.unique(groups, return_counts=True)
        withheld = suppressed_groups(dict(zip(labels.tolist(), sizes.tolist(), strict=True)), k)
        published = [g for g in labels.tolist() if g not in withheld]
        rows = {g: groups == g for g in published}
        dp, eo = _fairlearn_gaps(y_true, (y_score >= threshold).astype(np.int64), groups, published)
        attributes[attribute] = AttributeFairness(
            groups={g: CellCounts.of(y_true[r], y_score[r], threshold, bins) for g, r in rows.items()},
            exact_auroc={g: _auroc(y_true[r], y_score[r]) for g, r in rows.items()},
            suppressed_cells=len(withheld), suppressed_n=int(np.isin(groups, list(withheld)).sum()),
            demographic_parity_difference=dp, equalized_odds_difference=eo)
    return SiteFairness(k=k, threshold=threshold, bins=bins, sites=1, attributes=attributes)


def merge(sites: Sequence[FairnessTable], *, k: int = DEFAULT_K) -> FederatedFairness:
    """Sum the sites' count tables per attribute and group, then suppress again at ``k``.

    Cells a site withheld are not in its table, so with one ``k`` everywhere every merged cell already
    has at least ``k`` patients; suppressing again guards against a site run with a smaller ``k``.
    """
    if not sites:
        raise ValueError("merge needs at least one site's fairness table; none was given")
    settings = {(s.threshold, s.bins) for s in sites}
    if len(settings) > 1:
        raise ValueError(f"sites used different (threshold, bins) {sorted(settings)}; "
                         "set one threshold and bin count in the study for every site")
    threshold, bins = settings.pop()
    attributes = {}
    for attribute in sorted({a for s in sites for a in s.attributes}):
        tables = [s.attributes[attribute] for s in sites if attribute in s.attributes]
        summed: dict[str, CellCounts] = {}
        for table in tables:
            for group, cell in table.groups.items():
                summed[group] = summed[group] + cell if group in summed else cell
        withheld = suppressed_groups({g: c.n for g, c in summed.items()}, k)
        cells = {g: c for g, c in summed.items() if g not in withheld}
        attributes[attribute] = AttributeFairness(
            groups=cells,
            suppressed_cells=sum(t.suppressed_cells for t in tables) + len(withheld),
            suppressed_n=sum(t.suppressed_n for t in tables) + sum(summed[g].n for g in withheld),
            demographic_parity_difference=rate_gap([c.selection_rate for c in cells.values()]),
            equalized_odds_difference=_max_defined(rate_gap([c.tpr for c in cells.values()]),
                                                   rate_gap([c.fpr for c in cells.values()])))
    return FederatedFairness(k=k, threshold=threshold, bins=bins, sites=len(sites), attributes=attributes)


def _checked_predictions(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 1 or y_true.shape != y_score.shape:
        raise ValueError(f"fairness: y_true {y_true.shape} and y_score {y_score.shape} must be one value "
                         "per patient, same length")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("fairness: y_true must be 0/1 labels; threshold the outcome first")
    if not (np.isfinite(y_score).all() and ((y_score >= 0) & (y_score <= 1)).all()):
        raise ValueError("fairness: y_score must be probabilities in [0, 1]; apply the sigmoid to logits")
    return y_true.astype(np.int64), y_score


def _group_labels(attribute: str, values: Sequence[object], n: int) -> np.ndarray:
    labels = []
    for value in values:
        if isinstance(value, Number | np.number) and not (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"fairness: attribute {attribute!r} has the number {value!r} as a group; "
                             "band it first (ages: modalities.records.features.age_band) so no raw value "
                             "leaves the site")
        labels.append(str(value) if isinstance(value, str) and value else UNKNOWN)
    if len(labels) != n:
        raise ValueError(f"fairness: attribute {attribute!r} has {len(labels)} labels for {n} patients")
    return np.asarray(labels, dtype=object)


def _fairlearn_gaps(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                    published: list[str]) -> tuple[float | None, float | None]:
    """fairlearn's demographic parity and equalized odds differences over the published groups."""
    if len(published) < 2:
        return None, None
    rows = np.isin(groups, published)
    dp = float(demographic_parity_difference(y_true[rows], y_pred[rows], sensitive_features=groups[rows]))
    gaps = []
    for metric, label in ((true_positive_rate, 1), (false_positive_rate, 0)):
        defining = np.unique(groups[rows & (y_true == label)])
        if len(defining) >= 2:
            keep = np.isin(groups, defining)
            frame = MetricFrame(metrics=metric, y_true=y_true[keep], y_pred=y_pred[keep],
                                sensitive_features=groups[keep])
            gaps.append(float(frame.difference()))
    return dp, max(gaps) if gaps else None


def _max_defined(*values: float | None) -> float | None:
    defined = [v for v in values if v is not None]
    return max(defined) if defined else None


def _auroc(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    return float(roc_auc_score(y_true, y_score)) if 0 < y_true.sum() < len(y_true) else None
