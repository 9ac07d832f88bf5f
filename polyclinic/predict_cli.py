"""``polyclinic predict MODEL PATIENT_DIR [--json]``: one patient's probability of the target condition.

MODEL is the folder the coordinator writes (``OUT/model/``: ``model.pt``, ``study.json``, the model card) or
its ``model.pt``. PATIENT_DIR holds one patient's files in the site layout (``imaging/``, ``records/``,
``genomics/``; any may be missing). The answer: the probability, each modality's contribution, what was
used, missing or rejected and why, and the model card's intended use. Exit codes: 0 predicted, 2 bad input
(no model, a model that does not fit its study, no usable data, more than one patient).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    """Add ``predict`` to the ``polyclinic`` sub-commands (``commands`` from ``add_subparsers``)."""
    parser = commands.add_parser("predict", help="one patient's probability with per-modality contributions")
    parser.add_argument("model", type=Path, metavar="MODEL",
                        help="the model folder (OUT/model: model.pt, study.json, model card) or its model.pt")
    parser.add_argument("patient_dir", type=Path, metavar="PATIENT_DIR",
                        help="one patient's imaging/, records/ and genomics/ (any may be missing)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from polyclinic.predict_command import run as predict

    return predict(args)
