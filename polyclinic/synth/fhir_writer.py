"""Writes a site's records/ folder in the site's export layout: one Bundle per patient, a few big
Bundles, or an NDJSON bulk export (one file per resource type, the biggest gzipped as Bulk Data
servers may serve it: ``Observation.ndjson.gz``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from polyclinic.synth.fhir_resources import (
    FhirSite,
    Resource,
    encounter,
    late_condition,
    odd_unit_observation,
    patient_resources,
)
from polyclinic.synth.population import Patient
from polyclinic.synth.record_quirks import RecordQuirks
from polyclinic.synth.seeding import hex_name, uuid4
from polyclinic.synth.truth import BadFile

Layout = Literal["bundle-per-patient", "bundles", "ndjson"]
PATIENTS_FOR_TWO_BUNDLES = 40
"""From this many patients on, the "bundles" layout splits the export into two files."""
NDJSON_ORDER = ("Patient", "Observation", "Condition", "Consent", "Encounter")
GZIPPED = frozenset({"Observation"})
"""Resource types whose NDJSON file is written gzipped (``<type>.ndjson.gz``)."""


def _bundle(resources: list[Resource], base_url: str, rng: np.random.Generator) -> Resource:
    return {
        "resourceType": "Bundle",
        "id": uuid4(rng),
        "type": "collection",
        "entry": [{"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }


def _write_json(path: Path, data: Resource) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _ndjson_name(kind: str) -> str:
    return f"{kind}.ndjson.gz" if kind in GZIPPED else f"{kind}.ndjson"


def write_records(
    root: Path,
    patients: list[Patient],
    site: FhirSite,
    layout: Layout,
    base_url: str,
    rng: np.random.Generator,
    quirks: RecordQuirks | None = None,
) -> list[BadFile]:
    """Write ``root`` (``SITE/records``); returns the bad inputs planted there (one Encounter, and the
    result in an unknown unit when ``quirks`` has one). ``quirks`` add resources, never draws."""
    root.mkdir(parents=True, exist_ok=True)
    charts = [patient_resources(p, site, rng) for p in patients]
    owner = int(rng.integers(len(patients)))
    visit = encounter(patients[owner], site, rng)
    charts[owner].append(visit)
    planted = [(owner, "unused-resource-type", "skipped", f"Encounter/{visit['id']}")]
    quirks = quirks or RecordQuirks()
    for index, patient in enumerate(patients):
        late = quirks.late.get(patient.record_id, [])
        charts[index] += [late_condition(patient, site, diagnosis) for diagnosis in late]
        if quirks.odd_unit is not None and quirks.odd_unit.record_id == patient.record_id:
            odd = odd_unit_observation(patient, quirks.odd_unit)
            charts[index].append(odd)
            planted.append((index, "unknown-unit", "rejected", f"Observation/{odd['id']}"))

    where: dict[int, str] = {}
    if layout == "ndjson":
        for kind in NDJSON_ORDER:
            lines = [
                json.dumps(r, separators=(",", ":"))
                for chart in charts
                for r in chart
                if r["resourceType"] == kind
            ]
            data = "".join(line + "\n" for line in lines).encode("utf-8")
            name = _ndjson_name(kind)
            (root / name).write_bytes(gzip.compress(data, mtime=0) if kind in GZIPPED else data)
        where = {i: f"{root.name}/{_ndjson_name(fragment.split('/')[0])}" for i, *_, fragment in planted}
    else:
        if layout == "bundle-per-patient":
            groups = [[i] for i in range(len(patients))]
        else:
            half = (len(patients) + 1) // 2 if len(patients) >= PATIENTS_FOR_TWO_BUNDLES else len(patients)
            groups = [list(range(half)), list(range(half, len(patients)))]
        for group in filter(None, groups):
            path = root / f"{hex_name(rng)}.json"
            _write_json(path, _bundle([r for i in group for r in charts[i]], base_url, rng))
            where |= {i: f"{root.name}/{path.name}" for i in group}
    return [
        BadFile(where[i], "records", kind, expected, fragment=fragment, patient=patients[i].identity.mrn)
        for i, kind, expected, fragment in planted
    ]


def read_resources(root: Path) -> Iterator[tuple[str, Resource]]:
    """Every resource written under ``root`` by :func:`write_records`, with its file name: the inverse
    of the writer, so tests and the docs can check the export without a FHIR reader of their own."""
    for path in sorted(root.iterdir()):
        if path.name.endswith((".ndjson", ".ndjson.gz")):
            data = path.read_bytes()
            text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")
            for line in text.splitlines():
                yield path.name, json.loads(line)
        elif path.suffix == ".json":
            for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
                yield path.name, entry["resource"]
