"""Rendering for people: rich tables of what a site run found. Scripts use ``--json`` instead."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from client.site import Progress as ProgressCallback
from client.site_report import SiteReport

stderr = Console(stderr=True)


def print_json(payload: Any) -> None:
    """The one JSON object a ``--json`` command prints on stdout."""
    sys.stdout.write(json.dumps(payload, sort_keys=True, default=str) + "\n")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[ProgressCallback | None]:
    """A live bar on stderr when it is a terminal; nothing in logs, pipes or ``--json`` runs."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def render_site(report: SiteReport, console: Console, *, show_rejections: int = 20) -> None:
    """The steward's summary: per modality, patients by combination, consent, label prevalence."""
    table = Table(title=f"site {report.site_id}: data found", title_justify="left")
    for column in ("modality", "found", "items", "accepted", "rejected", "skipped"):
        table.add_column(column, justify="left" if column == "modality" else "right")
    for name, counts in report.modalities.items():
        table.add_row(name, str(counts.found), str(counts.items), str(counts.accepted),
                      str(sum(counts.rejected.values())), str(sum(counts.skipped.values())))
    console.print(table)
    reasons = Table(title="rejections by reason", title_justify="left")
    reasons.add_column("code")
    reasons.add_column("count", justify="right")
    for counts in report.modalities.values():
        for code, n in sorted(counts.rejected.items()):
            reasons.add_row(code, str(n))
    if reasons.row_count:
        console.print(reasons)
    p = report.patients
    people = Table(title="patients", title_justify="left")
    people.add_column("what")
    people.add_column("count", justify="right")
    people.add_row("discovered", str(p.discovered))
    for code, n in sorted({**p.consent_excluded, **p.excluded}.items()):
        people.add_row(f"excluded: {code}", str(n))
    people.add_row("included", str(p.included))
    for combination, n in sorted(p.by_combination.items()):
        people.add_row(f"  with {combination}", str(n))
    for split, n in sorted(p.split.items()):
        people.add_row(f"  {split}", str(n))
    prevalence = "n/a" if p.prevalence is None else f"{p.prevalence:.1%} ({p.positives})"
    people.add_row("label prevalence", prevalence)
    console.print(people)
    for counts_name, counts in report.modalities.items():
        for note in counts.notes:
            console.print(f"[yellow]note[/] {counts_name}: {note}")
    for rejection in report.rejections[:show_rejections]:
        console.print(f"[red]rejected[/] {rejection.where}: {rejection.code}: {rejection.message}"
                      + (f" ({rejection.hint})" if rejection.hint else ""), highlight=False)
    if len(report.rejections) > show_rejections:
        console.print(f"... and {len(report.rejections) - show_rejections} more (use --json for all)")
    if report.cache is not None:
        c = report.cache
        console.print(f"cache: {c.written} written, {c.reused} reused, {c.pruned} stale removed")
    console.print(f"done in {report.seconds:.1f} s")
