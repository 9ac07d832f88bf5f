"""``polyclinic report RUN_OR_STATE --out DIR``: the auditor's report (``report.html`` + ``report.json``).

``compliance`` reads the ledgers and trails; what it may not import lives here: each site's
``site.toml`` (its privacy budget), the study (for the Art. 30 record) and the fairness evaluation of
the global model on each site's validation split (cohort cache + fusion model). Exit codes: 0 the
report is written and found no problem, 1 written but a trail is tampered, a budget overspent or the
ledger and the trail disagree, 2 nothing reportable at the path or bad options.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    """Add ``report`` to the ``polyclinic`` sub-commands (``commands`` from ``add_subparsers``)."""
    report = commands.add_parser("report", help="auditor report of a run or a site: report.html, report.json")
    report.add_argument("source", type=Path, metavar="RUN_OR_STATE",
                        help="a run folder (demo --out) or one site's STATE")
    report.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the report is written")
    report.add_argument("--site", type=Path, metavar="SITE",
                        help="the site folder of a bare STATE, for its site.toml (default: found beside it)")
    report.add_argument("--model", type=Path, metavar="MODEL.pt",
                        help="global weights for the fairness figures (default: RUN/model/model.pt)")
    report.add_argument("--json", action="store_true", help="print one JSON summary instead of lines")


def run(args: argparse.Namespace) -> int:
    from polyclinic.report_command import run as report

    return report(args)
