"""Searching outputs for the synthetic patients' identifiers: shared by every leak test."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from polyclinic.synth import GroundTruth

LONG = 8
"""Binary tensor bytes are searched only for identifiers this long: shorter ones (a 3-letter name)
occur in random float bytes by chance. Strings inside saved objects are searched for every identifier."""


def identifiers(truth: GroundTruth) -> set[str]:
    """Every name, MRN, FHIR id, birth date, phone, address part, accession and sample id, lower case."""
    return {i.lower() for site in truth.sites for p in site.patients for i in p.identifiers()}


def contains(text: str, identifier: str) -> bool:
    """``identifier`` as a whole token: a postcode inside a hex pseudonym or digest is not a leak."""
    return re.search(rf"(?<![0-9a-z]){re.escape(identifier)}(?![0-9a-z])", text) is not None


def strings(value: object) -> list[str]:
    """Every string inside a loaded object (dict keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings(v)]
    return []


def texts_under(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Files under ``folder`` as (text to search for every identifier, binary to search for long ones)."""
    texts, binaries = {}, {}
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        name = str(path.relative_to(folder))
        raw = path.read_bytes().decode("latin-1").lower()
        if path.suffix == ".pt" or path.parent.name == "keys":
            binaries[name] = raw
            if path.suffix == ".pt":
                texts[name] = "\n".join(strings(torch.load(path, weights_only=True))).lower()
        else:
            texts[name] = raw
    return texts, binaries


def leaks(texts: dict[str, str], binaries: dict[str, str], searched: set[str]) -> list[tuple[str, str]]:
    """(identifier, where) for every hit."""
    return [(i, name) for i in searched for name, text in texts.items() if contains(text, i)] + \
        [(i, name) for i in searched if len(i) >= LONG for name, raw in binaries.items() if i in raw]
