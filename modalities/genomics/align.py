"""Lining a table's columns up with the study's gene panel, and its cells up with numbers.

Column names are matched after stripping whitespace, exactly first and then ignoring case (``tp53``
matches ``TP53``), because exports from R, Excel and lab systems disagree on both; an exact match
always wins over a case-insensitive one, and among equals the leftmost column wins. Positions, not
labels, identify columns so duplicate headers cannot make one name mean two columns.

Cells are text until proven numeric: a missing marker (empty, ``NA``, ``NaN``, ``NULL``...) is missing,
anything else that does not parse as a number is counted as non-numeric and treated as missing, so the
steward sees how much of a table was unusable instead of a silent NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})
"""Cell texts meaning "no value", compared after stripping and ignoring case (pandas' usual set)."""


class ColumnNames:
    """Finds a column by name: stripped, exact first, then ignoring case; leftmost wins."""

    def __init__(self, columns: Sequence[object]) -> None:
        self._exact: dict[str, int] = {}
        self._folded: dict[str, int] = {}
        for index, column in enumerate(columns):
            name = str(column).strip()
            self._exact.setdefault(name, index)
            self._folded.setdefault(name.casefold(), index)

    def find(self, name: str) -> tuple[int, bool] | None:
        """``(position, matched exactly)``, or None when no column has this name."""
        key = name.strip()
        if key in self._exact:
            return self._exact[key], True
        if key.casefold() in self._folded:
            return self._folded[key.casefold()], False
        return None

    def position(self, name: str) -> int | None:
        """The column's position, or None when absent."""
        hit = self.find(name)
        return None if hit is None else hit[0]


@dataclass(frozen=True)
class Alignment:
    """Where each panel gene sits in a table (``None``: absent) and what the table holds beside them."""

    positions: tuple[int | None, ...]
    absent: tuple[str, ...]
    case_insensitive: tuple[str, ...]
    """Panel genes found only by ignoring case, so the steward can check the match is meant."""
    ignored: int
    """Columns that are neither the patient column nor a panel gene (names not reported: they may be PHI)."""


def align_panel(columns: Sequence[object], panel: Sequence[str], patient_position: int) -> Alignment:
    """Map every panel gene to a column position; the patient column never counts as a gene."""
    names = ColumnNames(columns)
    positions: list[int | None] = []
    case_insensitive = []
    for gene in panel:
        hit = names.find(gene)
        if hit is None or hit[0] == patient_position:
            positions.append(None)
            continue
        positions.append(hit[0])
        if not hit[1]:
            case_insensitive.append(gene)
    used = {p for p in positions if p is not None} | {patient_position}
    return Alignment(
        positions=tuple(positions),
        absent=tuple(g for g, p in zip(panel, positions, strict=True) if p is None),
        case_insensitive=tuple(case_insensitive),
        ignored=len(columns) - len(used),
    )


@dataclass(frozen=True)
class PanelValues:
    """A table's panel as float32 ``(rows, genes)`` with NaN where missing, and what was set to NaN."""

    values: np.ndarray
    non_finite_per_row: np.ndarray
    non_numeric: dict[str, int]
    """Panel gene -> cells that were text, not numbers."""
    no_numbers: tuple[str, ...]
    """Panel genes whose column holds text but not one number: treated as absent."""


def panel_values(frame: pd.DataFrame, alignment: Alignment, panel: Sequence[str], *,
                 decimal_comma: bool = False) -> PanelValues:
    """Numbers for every panel gene of every row; absent genes are NaN columns.

    ``decimal_comma`` reads ``1,5`` as 1.5: semicolon-separated exports (Excel in most European
    locales) use the comma as decimal mark, which is why they are not comma-separated.
    """
    matrix = np.full((len(frame), len(panel)), np.nan, dtype=np.float64)
    non_numeric: dict[str, int] = {}
    no_numbers = []
    for j, (gene, position) in enumerate(zip(panel, alignment.positions, strict=True)):
        if position is None:
            continue
        numbers, bad = _numbers(frame.iloc[:, position], decimal_comma)
        matrix[:, j] = numbers
        if bad:
            non_numeric[gene] = bad
            if np.isnan(numbers).all():
                no_numbers.append(gene)
    values, non_finite = _finite_float32(matrix)
    return PanelValues(values, non_finite, non_numeric, tuple(no_numbers))


def _finite_float32(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 copy with infinities (in the input or from float32 overflow) set to NaN, counted per row."""
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(matrix, dtype=np.float64).astype(np.float32)
    infinite = np.isinf(values)
    values[infinite] = np.nan
    return values, infinite.sum(axis=-1)


def patient_ids(column: pd.Series) -> list[str | None]:
    """Identifier cells as stripped text; ``None`` where the cell is empty or a missing marker."""
    cells, missing = _text(column)
    return [None if gone else cell for cell, gone in zip(cells.tolist(), missing.tolist(), strict=True)]


def _text(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    cells = column.astype("string").str.strip()
    missing = cells.isna() | cells.str.casefold().isin(MISSING_MARKERS)
    return cells, missing.fillna(True).astype(bool)


def _numbers(column: pd.Series, decimal_comma: bool) -> tuple[np.ndarray, int]:
    """A column as float64 (NaN where missing or not a number) and how many cells were not numbers."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan), 0
    cells, missing = _text(column)
    if decimal_comma:
        cells = cells.str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(cells.where(~missing), errors="coerce")
    values = pd.Series(numbers).to_numpy(dtype=np.float64, na_value=np.nan)
    bad = int((~missing.to_numpy() & np.isnan(values)).sum())
    return values, bad
