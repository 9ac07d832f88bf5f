"""Turning one genomic table into per-patient items, rejected rows and notes for the steward.

A table holds many patients, so it is parsed once here and each usable row becomes an item whose
payload is already the aligned panel (a :class:`GenomicsSample`): the row's other cells are dropped
on the spot and never travel further. Counting is auditable: every data row of a usable table is
either an item or a ``#row=N`` rejection (N counts data rows from 1, the header excluded), and a file
rejected whole counts as one input, so ``found == len(items) + len(rejections)``.

Of several rows for one patient the first usable one is kept (tables in walk order, i.e. sorted
paths, then rows in order); a row rejected for another reason does not claim the patient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modalities.base import Discovery, Item
from modalities.files import fingerprint, relative
from modalities.genomics.align import (
    Alignment,
    ColumnNames,
    PanelValues,
    align_panel,
    panel_values,
    patient_ids,
)
from modalities.genomics.reasons import MODALITY, rejection
from modalities.genomics.sample import GenomicsSample
from modalities.genomics.settings import GenomicsSettings
from modalities.genomics.tables import Table, TableError, read_table

_PREVIEW = 20
_HINTS = {
    "not-a-table": "export the table as CSV, TSV or Parquet, one row per sample",
    "empty-table": "remove the file, or re-export it with its rows",
    "unreadable": "check the file permissions for the user running the client",
    "no-patient-column": "set patient-column under [genomics] in study.toml to the column holding the "
                         "patient identifier, or rename that column",
    "no-panel-genes": "check that this is the expression table and that the study's gene-panel uses the "
                      "same gene names (e.g. HGNC symbols)",
    "no-patient-id": "fill in the patient identifier or remove the row",
    "empty-row": "check the row against the source system; a row without values carries no information",
    "duplicate-sample": "keep one sample per patient (e.g. the primary tumour), or merge them upstream",
}


class TableScanner:
    """Scans the tables of one modality folder into a Discovery, remembering patients across tables."""

    def __init__(self, settings: GenomicsSettings, *, root: Path, discovery: Discovery) -> None:
        self.settings = settings
        self.root = root
        self.site_root = root.parent
        self.discovery = discovery
        self.skipped: Counter[str] = Counter()
        self._first: dict[str, tuple[str, int]] = {}  # patient id -> (table, row) of the sample kept

    def scan(self, path: Path) -> None:
        """Add the items, rejections and notes of one file; never raises for bad content."""
        where = relative(path, self.site_root)
        try:
            table = read_table(path, patient_column=self.settings.patient_column)
            digest = fingerprint(path)
        except TableError as exc:
            return self._reject_file(exc.reason, where, str(exc))
        except OSError as exc:
            return self._reject_file("unreadable", where,
                                     f"cannot be read ({exc.strerror or type(exc).__name__})")
        if table.frame.shape[0] == 0:
            return self._reject_file("empty-table", where, "the table has a header but no rows")
        if table.patient_position is None:
            return self._reject_file("no-patient-column", where, self._no_patient_column(table))
        panel_size = len(self.settings.gene_panel)
        alignment = align_panel(table.frame.columns, self.settings.gene_panel, table.patient_position)
        if len(alignment.absent) == panel_size:
            return self._reject_file("no-panel-genes", where,
                                     f"none of its {table.frame.shape[1] - 1} other column(s) is named "
                                     f"after a gene of the study's {panel_size}-gene panel")
        panel = panel_values(table.frame, alignment, self.settings.gene_panel,
                             decimal_comma=table.delimiter == ";")
        self._rows(table, panel, where, relative(path, self.root), digest)
        self._notes(where, alignment, panel)

    def _rows(self, table: Table, panel: PanelValues, where: str, name: str, digest: str) -> None:
        ids = patient_ids(table.frame.iloc[:, table.patient_position])
        present = ~np.isnan(panel.values)
        for index, patient in enumerate(ids):
            row = index + 1
            here = f"{where}#row={row}"
            self.discovery.found += 1
            if patient is None:
                self._reject_row("no-patient-id", here,
                                 f"the {self.settings.patient_column} cell is empty")
            elif not present[index].any():
                self._reject_row("empty-row", here, "no panel gene has a numeric value in this row")
            elif patient in self._first:
                self._reject_row("duplicate-sample", here, _duplicate(where, self._first[patient]))
            else:
                self._first[patient] = (where, row)
                sample = GenomicsSample(panel.values[index].copy(), name,
                                        int(panel.non_finite_per_row[index]))
                self.discovery.items.append(Item(MODALITY, patient, here, digest, sample))

    def _notes(self, where: str, alignment: Alignment, panel: PanelValues) -> None:
        """What the steward should know about a usable table; gene names are not identifying."""
        notes = self.discovery.notes
        if alignment.absent:
            notes.append(f"{where}: {len(alignment.absent)} of {len(self.settings.gene_panel)} panel genes "
                         f"absent: {', '.join(alignment.absent)}")
        if alignment.case_insensitive:
            notes.append(f"{where}: panel genes matched ignoring case: "
                         f"{', '.join(alignment.case_insensitive)}")
        if alignment.ignored:
            notes.append(f"{where}: {alignment.ignored} column(s) outside the panel ignored")
        if panel.non_numeric:
            cells = sum(panel.non_numeric.values())
            self.skipped["genomics.non-numeric-gene"] += cells
            notes.append(f"{where}: {cells} non-numeric cell(s) treated as missing in genes "
                         f"{', '.join(panel.non_numeric)} (genomics.non-numeric-gene)")
        if panel.no_numbers:
            notes.append(f"{where}: genes {', '.join(panel.no_numbers)} hold no number at all and are "
                         "treated as absent")
        infinite = int(panel.non_finite_per_row.sum())
        if infinite:
            self.skipped["genomics.non-finite-value"] += infinite
            notes.append(f"{where}: {infinite} infinite or out-of-range value(s) treated as missing "
                         "(genomics.non-finite-value)")

    def _no_patient_column(self, table: Table) -> str:
        wanted = self.settings.patient_column
        columns = [str(c).strip() for c in table.frame.columns]
        if _looks_transposed(table, self.settings.gene_panel):
            return (f"no column named {wanted!r}; the table looks transposed (genes in rows, samples in "
                    f"columns), so its {len(columns)} column names are not listed (they may be patient "
                    "identifiers)")
        shown = ", ".join(repr(c[:40]) for c in columns[:_PREVIEW])
        more = f" and {len(columns) - _PREVIEW} more" if len(columns) > _PREVIEW else ""
        return f"no column named {wanted!r} (found {len(columns)}: {shown}{more})"

    def _reject_file(self, reason: str, where: str, message: str) -> None:
        self.discovery.found += 1
        self.discovery.rejections.append(rejection(reason, where, message, _HINTS[reason]))

    def _reject_row(self, reason: str, where: str, message: str) -> None:
        self.discovery.rejections.append(rejection(reason, where, message, _HINTS[reason]))


def _duplicate(where: str, first: tuple[str, int]) -> str:
    """Points at the kept sample by row number, never by identifier; another table is not named."""
    table, row = first
    place = f"row {row} of this table" if table == where else "an earlier table"
    return f"this patient already has a sample in {place}; only that first sample is used"


def _looks_transposed(table: Table, panel: Sequence[str]) -> bool:
    """Genes down the first column: the header then likely holds sample (patient) identifiers."""
    if table.frame.shape[1] == 0:
        return False
    first = ColumnNames(table.frame.iloc[:, 0].astype("string").fillna("").tolist())
    return any(first.position(gene) is not None for gene in panel)
