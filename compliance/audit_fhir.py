"""The trail as FHIR R5 AuditEvent resources (NDJSON, one per entry) for a hospital's audit repository.

Each resource carries the entry's chain fields (sequence, previous hash, hash, signature) as entity
details, so a receiver can still verify the chain from the export alone, and the resource id is the
entry's hash. Details become one ``entity.detail`` each (counts by code flattened to
``reasons.<code>``). Every resource is validated with fhir.resources before anything is written, and
the file is replaced atomically, so a half-written export never looks complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fhir.resources.auditevent import AuditEvent

from compliance.audit_chain import Entry, read_trail
from compliance.audit_events import EVENTS

EVENT_SYSTEM = "urn:polyclinic:audit-event"
DETAIL_SYSTEM = "urn:polyclinic:audit-detail"
ACTOR_SYSTEM = "urn:polyclinic:actor"
KEY_SYSTEM = "urn:polyclinic:audit-key"
SEQUENCE_SYSTEM = "urn:polyclinic:audit-sequence"


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, int):
        return {"valueInteger": value}
    if isinstance(value, float):
        return {"valueQuantity": {"value": value}}
    return {"valueString": str(value)}


def _details(details: dict[str, Any]) -> list[dict[str, Any]]:
    flat: list[tuple[str, Any]] = []
    for name, value in sorted(details.items()):
        if isinstance(value, dict):
            flat.extend((f"{name}.{code}", count) for code, count in sorted(value.items()))
        else:
            flat.append((name, value))
    return [{"type": {"coding": [{"system": DETAIL_SYSTEM, "code": name}]}, **_value(value)}
            for name, value in flat]


def audit_event(entry: Entry, key_fingerprint: str) -> AuditEvent:
    """One entry as a validated R5 AuditEvent (pydantic ValidationError if it cannot be one)."""
    spec = EVENTS.get(entry.event)
    coding = {"system": EVENT_SYSTEM, "code": entry.event}
    chain = {"sequence": entry.sequence, "prev_hash": entry.prev_hash, "hash": entry.hash,
             "signature": entry.signature}
    return AuditEvent.model_validate({
        "resourceType": "AuditEvent",
        "id": entry.hash,
        "code": {"coding": [{**coding, "display": spec.description} if spec else coding]},
        "action": spec.action if spec else "E",
        "recorded": entry.time,
        "agent": [{"who": {"identifier": {"system": ACTOR_SYSTEM, "value": entry.actor}}, "requestor": True}],
        "source": {"observer": {"identifier": {"system": KEY_SYSTEM, "value": key_fingerprint}}},
        "entity": [{"what": {"identifier": {"system": SEQUENCE_SYSTEM, "value": str(entry.sequence)}},
                    "detail": _details(entry.details_dict()) + _details(chain)}],
    })


def export_fhir(db: Path, out: Path) -> int:
    """Write every entry of the trail ``db`` to ``out`` as NDJSON AuditEvents; the number written."""
    meta, entries = read_trail(db)
    lines = [audit_event(e, meta.get("key_fingerprint", "unknown")).model_dump_json() for e in entries]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.writelines(line + "\n" for line in lines)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return len(lines)
