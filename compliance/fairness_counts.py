"""One subgroup cell as a count table: enough for every fairness figure, and summable across sites.

Raw predictions never leave a site, so the federated view has to be rebuilt from counts. A cell holds
its size, its positives, the confusion counts at the decision threshold, and per score bin (fixed,
equal-width bins on [0, 1]) the positives, the negatives and the sum of predicted scores. Sums of
these tables over sites are exactly the tables of the pooled patients, so every rate below is exact
after a merge, with one exception: AUROC. From histograms, pairs of a positive and a negative in the
same bin cannot be ordered and count as ties (one half), so the binned AUROC is off from the exact one
by at most half the share of same-bin pairs; :attr:`CellCounts.auroc_max_error` is that bound, computed
from the same table, so a reader is always told how far the figure can be from the exact value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, NonNegativeFloat, NonNegativeInt, model_validator


def score_bins(y_score: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each score: ``floor(score * bins)``, with 1.0 in the last bin (monotone in the score)."""
    return np.minimum((y_score * bins).astype(np.int64), bins - 1)


class CellCounts(BaseModel):
    """Counts of one subgroup at one decision threshold; ``a + b`` is the table of both groups of patients."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: NonNegativeInt
    positives: NonNegativeInt
    tp: NonNegativeInt
    fp: NonNegativeInt
    tn: NonNegativeInt
    fn: NonNegativeInt
    positive_histogram: tuple[NonNegativeInt, ...]
    negative_histogram: tuple[NonNegativeInt, ...]
    score_sum: tuple[NonNegativeFloat, ...]
    """Sum of predicted scores per bin (both classes): the mean prediction of a bin, for calibration."""

    @model_validator(mode="after")
    def _consistent(self) -> CellCounts:
        problems = []
        if self.tp + self.fn != self.positives or self.fp + self.tn != self.n - self.positives:
            problems.append("confusion counts do not add up to n and positives")
        if not len(self.positive_histogram) == len(self.negative_histogram) == len(self.score_sum) >= 2:
            problems.append("histograms and score sums need one equal length of at least 2 bins")
        if sum(self.positive_histogram) != self.positives or sum(self.negative_histogram) != self.negatives:
            problems.append("histograms do not add up to positives and negatives")
        if problems:
            raise ValueError(f"inconsistent fairness cell: {'; '.join(problems)}; "
                             "the sending site built it wrongly")
        return self

    @classmethod
    def of(cls, y_true: np.ndarray, y_score: np.ndarray, threshold: float, bins: int) -> CellCounts:
        """The table of these patients; a score at or above ``threshold`` is a positive prediction."""
        positive, predicted = y_true == 1, y_score >= threshold
        index = score_bins(y_score, bins)
        return cls(
            n=len(y_true),
            positives=int(positive.sum()),
            tp=int((positive & predicted).sum()),
            fp=int((~positive & predicted).sum()),
            tn=int((~positive & ~predicted).sum()),
            fn=int((positive & ~predicted).sum()),
            positive_histogram=tuple(np.bincount(index[positive], minlength=bins).tolist()),
            negative_histogram=tuple(np.bincount(index[~positive], minlength=bins).tolist()),
            score_sum=tuple(np.bincount(index, weights=y_score, minlength=bins).tolist()),
        )

    def __add__(self, other: CellCounts) -> CellCounts:
        if len(self.score_sum) != len(other.score_sum):
            raise ValueError(f"cannot add fairness cells with {len(self.score_sum)} and "
                             f"{len(other.score_sum)} score bins; every site must use the same bins")
        return CellCounts(
            n=self.n + other.n, positives=self.positives + other.positives, tp=self.tp + other.tp,
            fp=self.fp + other.fp, tn=self.tn + other.tn, fn=self.fn + other.fn,
            positive_histogram=_add(self.positive_histogram, other.positive_histogram),
            negative_histogram=_add(self.negative_histogram, other.negative_histogram),
            score_sum=_add(self.score_sum, other.score_sum),
        )

    @property
    def negatives(self) -> int:
        return self.n - self.positives

    @property
    def prevalence(self) -> float | None:
        return _ratio(self.positives, self.n)

    @property
    def selection_rate(self) -> float | None:
        """Share predicted positive: the quantity demographic parity compares."""
        return _ratio(self.tp + self.fp, self.n)

    @property
    def tpr(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def fpr(self) -> float | None:
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def ppv(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def calibration_error(self) -> float | None:
        """Expected calibration error over the fixed bins: sum of (bin share) x |mean score - observed rate|.

        Per bin that is ``|score_sum - positives| / n``, so it is exact from counts and after merging.
        """
        if self.n == 0:
            return None
        return float(np.abs(np.asarray(self.score_sum) - np.asarray(self.positive_histogram)).sum() / self.n)

    @property
    def binned_auroc(self) -> float | None:
        """AUROC from the histograms (same-bin pairs count one half); None without both classes."""
        pairs = self.positives * self.negatives
        if pairs == 0:
            return None
        pos, neg = np.asarray(self.positive_histogram), np.asarray(self.negative_histogram)
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / pairs)

    @property
    def auroc_max_error(self) -> float | None:
        """Largest possible distance of :attr:`binned_auroc` from the exact AUROC: half the same-bin pairs.

        Pairs in different bins are ordered the same by bin and by score (bins are monotone); only a
        same-bin pair, worth 0, 1/2 or 1 exactly, is counted as 1/2.
        """
        pairs = self.positives * self.negatives
        if pairs == 0:
            return None
        same_bin = np.dot(np.asarray(self.positive_histogram), np.asarray(self.negative_histogram))
        return float(0.5 * same_bin / pairs)


@dataclass(frozen=True)
class GroupMetrics:
    """The published figures of one subgroup; None where a rate is undefined (no positives, say)."""

    n: int
    positives: int
    prevalence: float | None
    auroc: float | None
    auroc_max_error: float | None
    """0 when ``auroc`` is exact (at a site); the binned bound after a merge."""
    tpr: float | None
    fpr: float | None
    ppv: float | None
    selection_rate: float | None
    calibration_error: float | None

    @classmethod
    def of(cls, cell: CellCounts, exact_auroc: float | None = None) -> GroupMetrics:
        exact = exact_auroc is not None
        return cls(
            n=cell.n, positives=cell.positives, prevalence=cell.prevalence,
            auroc=exact_auroc if exact else cell.binned_auroc,
            auroc_max_error=0.0 if exact else cell.auroc_max_error,
            tpr=cell.tpr, fpr=cell.fpr, ppv=cell.ppv, selection_rate=cell.selection_rate,
            calibration_error=cell.calibration_error,
        )


def rate_gap(values: list[float | None]) -> float | None:
    """Largest minus smallest of the defined rates; None unless at least two groups define it."""
    defined = [v for v in values if v is not None]
    return max(defined) - min(defined) if len(defined) >= 2 else None


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
