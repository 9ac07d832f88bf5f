"""``polyclinic audit verify|export``: the auditor's view of a site's or the coordinator's trail.

Exit codes as everywhere: 0 intact (or exported), 1 tampered (one line naming the first bad entry),
2 nothing readable at the path or a bad ``--public-key``. Only an intact trail is exported: an export
is what a hospital's audit repository will trust, while a damaged trail is evidence to keep as a file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from compliance.audit_chain import AUDIT_FILE, AuditUnreadable
from compliance.audit_fhir import export_fhir
from compliance.audit_verify import load_public_key, verify

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def add_parser(commands: Any) -> None:
    """Add ``audit`` to the ``polyclinic`` sub-commands (``commands`` from ``add_subparsers``)."""
    audit = commands.add_parser("audit", help="verify or export a signed audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_commands.add_parser("verify", help="check every hash, link and signature (1: tampered)")
    check.add_argument("trail", type=Path, metavar="STATE_OR_DB", help="STATE (holding audit.db) or a db")
    check.add_argument("--public-key", type=Path, metavar="PEM",
                       help="the trail's expected audit-ed25519.pub (pins the signer)")
    check.add_argument("--json", action="store_true", help="print one JSON object instead of a line")
    export = audit_commands.add_parser("export", help="write the trail as FHIR R5 AuditEvent NDJSON")
    export.add_argument("trail", type=Path, metavar="STATE_OR_DB")
    export.add_argument("--fhir", type=Path, required=True, metavar="OUT.ndjson")


def trail_path(path: Path) -> Path:
    """A folder means its ``audit.db``; anything else is taken as the database itself."""
    return path / AUDIT_FILE if path.is_dir() else path


def run(args: argparse.Namespace) -> int:
    try:
        if args.audit_command == "verify":
            return _verify(args)
        return _export(args)
    except (AuditUnreadable, ValueError, OSError) as exc:
        print(f"polyclinic audit: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _verify(args: argparse.Namespace) -> int:
    key = load_public_key(args.public_key) if args.public_key else None
    result = verify(trail_path(args.trail), key)
    if args.json:
        sys.stdout.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
    else:
        print(result.summary())
    return EXIT_OK if result.ok else EXIT_FAILED


def _export(args: argparse.Namespace) -> int:
    db = trail_path(args.trail)
    result = verify(db)
    if not result.ok:
        print(f"{result.summary()}; not exported (keep {db} as evidence)", file=sys.stderr)
        return EXIT_FAILED
    count = export_fhir(db, args.fhir)
    print(f"exported {count} AuditEvent resources to {args.fhir}", file=sys.stderr)
    return EXIT_OK
