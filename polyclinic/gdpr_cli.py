"""``polyclinic gdpr access|erase SITE PATIENT_ID``: a data subject's Art. 15 and Art. 17 requests.

PATIENT_ID is the identifier in the hospital's records that links the modalities (the FHIR Patient's
MR identifier, the DICOM PatientID, the genomics patient column). It is pseudonymised with the site's
key at once, exactly as a site run does, and only the pseudonym is recorded (GDPR register, audit
trail). The raw identifier appears on stdout only, for the steward answering the data subject: never
in STATE, a log line or stderr.

An erasure for an identifier the site does not hold is still recorded (with a note on stderr): an
erasure must also hold for data of that patient that arrives later, and an entry for a pseudonym that
matches nobody excludes nobody. It takes effect at once: the patient's cached features are removed and
every later site run excludes them (``gdpr.erased``). The answer states the residual influence bound.

Exit codes: 0 served, 2 bad input (empty PATIENT_ID, no such site, an unreadable register or trail).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    """Add ``gdpr`` to the ``polyclinic`` sub-commands (``commands`` from ``add_subparsers``)."""
    parser = commands.add_parser("gdpr", help="a patient's GDPR Art. 15 access or Art. 17 erasure request")
    requests = parser.add_subparsers(dest="gdpr_command", required=True)
    for name, text in (("access", "Art. 15: what the site holds and which training rounds used the patient"),
                       ("erase", "Art. 17: exclude the patient from now on; states the residual influence")):
        sub = requests.add_parser(name, help=text)
        sub.add_argument("site", type=Path)
        sub.add_argument("patient_id", metavar="PATIENT_ID",
                         help="the id in the hospital's records (FHIR MR identifier, DICOM PatientID)")
        sub.add_argument("--state", type=Path, help="state directory (default: SITE/.polyclinic)")
        sub.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args: argparse.Namespace) -> int:
    from polyclinic.gdpr_command import run as serve

    return serve(args)
