"""Writes a site's records/ folder in the site's export layout: one Bundle per patient, a few big
Bundles, or an NDJSON bulk export (one file per resource type).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from polyclinic.synth.fhir_resources import FhirSite, Resource, encounter, patient_resources
from polyclinic.synth.population import Patient
from polyclinic.synth.seeding import hex_name, uuid4
from polyclinic.synth.truth import BadFile

Layout = Literal["bundle-per-patient", "bundles", "ndjson"]
PATIENTS_FOR_TWO_BUNDLES = 40
"""From this many patients on, the "bundles" layout splits the export into two files."""
NDJSON_ORDER = ("Patient", "Observation", "Condition", "Consent", "Encounter")


def _bundle(resources: list[Resource], base_url: str, rng: np.random.Generator) -> Resource:
    return {
        "resourceType": "Bundle",
        "id": uuid4(rng),
        "type": "collection",
        "entry": [{"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }


def _write_json(path: Path, data: Resource) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_records(
    root: Path,
    patients: list[Patient],
    site: FhirSite,
    layout: Layout,
    base_url: str,
    rng: np.random.Generator,
) -> list[BadFile]:
    """Write ``root`` (``SITE/records``); returns the bad inputs planted there (one Encounter)."""
    root.mkdir(parents=True, exist_ok=True)
    charts = [patient_resources(p, site, rng) for p in patients]
    owner = int(rng.integers(len(patients)))
    visit = encounter(patients[owner], site, rng)
    charts[owner].append(visit)
    fragment = f"Encounter/{visit['id']}"
    mrn = patients[owner].identity.mrn

    if layout == "ndjson":
        for kind in NDJSON_ORDER:
            lines = [
                json.dumps(r, separators=(",", ":"))
                for chart in charts
                for r in chart
                if r["resourceType"] == kind
            ]
            (root / f"{kind}.ndjson").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return [
            BadFile(
                f"{root.name}/Encounter.ndjson",
                "records",
                "unused-resource-type",
                "skipped",
                fragment=fragment,
                patient=mrn,
            )
        ]

    if layout == "bundle-per-patient":
        groups = [[i] for i in range(len(patients))]
    else:
        half = (len(patients) + 1) // 2 if len(patients) >= PATIENTS_FOR_TWO_BUNDLES else len(patients)
        groups = [list(range(half)), list(range(half, len(patients)))]
    where = ""
    for group in filter(None, groups):
        path = root / f"{hex_name(rng)}.json"
        _write_json(path, _bundle([r for i in group for r in charts[i]], base_url, rng))
        if owner in group:
            where = f"{root.name}/{path.name}"
    return [BadFile(where, "records", "unused-resource-type", "skipped", fragment=fragment, patient=mrn)]


def read_resources(root: Path) -> Iterator[tuple[str, Resource]]:
    """Every resource written under ``root`` by :func:`write_records`, with its file name: the inverse
    of the writer, so tests and the docs can check the export without a FHIR reader of their own."""
    for path in sorted(root.iterdir()):
        if path.suffix == ".ndjson":
            for line in path.read_text(encoding="utf-8").splitlines():
                yield path.name, json.loads(line)
        elif path.suffix == ".json":
            for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
                yield path.name, entry["resource"]
