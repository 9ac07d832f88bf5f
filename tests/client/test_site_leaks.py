"""Nothing identifying reaches STATE, a log line or the command's output after `site prepare`.

Every fake name, MRN, FHIR id, birth date (both spellings), phone, address part, accession number and
sample id of the synthetic patients is searched for in every file under STATE (cache entries are
loaded and every string inside them checked, and their raw bytes searched too), in the site log, and
in what `polyclinic -v site prepare` printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _contains(text: str, identifier: str) -> bool:
    """``identifier`` as a whole token: a postcode inside a hex pseudonym or digest is not a leak."""
    return re.search(rf"(?<![0-9a-z]){re.escape(identifier)}(?![0-9a-z])", text) is not None


LONG = 8
"""Binary tensor bytes are searched only for identifiers this long: shorter ones (a 3-letter name)
occur in random float bytes by chance. Strings inside cache entries are searched for every identifier."""


def _texts(state: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Files under STATE as (text to search for every identifier, binary to search for long ones)."""
    texts, binaries = {}, {}
    for path in state.rglob("*"):
        if not path.is_file():
            continue
        name = str(path.relative_to(state))
        raw = path.read_bytes().decode("latin-1").lower()
        if path.suffix == ".pt" or path.parent.name == "keys":
            binaries[name] = raw
            if path.suffix == ".pt":
                texts[name] = "\n".join(_strings(torch.load(path, weights_only=True))).lower()
        else:
            texts[name] = raw
    return texts, binaries


@pytest.mark.parametrize("index", [0, 1, 2])
def test_prepare_leaks_no_identifier(federation, tmp_path, index):
    root, truth = federation
    site_truth = truth.sites[index]
    state = tmp_path / "state"
    result = subprocess.run(
        [sys.executable, "-m", "polyclinic.cli", "-v", "site", "prepare", str(root / site_truth.id),
         "--state", str(state)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert result.returncode == 0, result.stderr
    texts, binaries = _texts(state)
    assert any(name.startswith("logs/") for name in texts) and any(n.endswith(".pt") for n in texts)
    assert "client.site" in texts["logs/polyclinic.log"]  # the log really holds the run's lines
    texts["stdout"], texts["stderr"] = result.stdout.lower(), result.stderr.lower()
    assert "patients" in texts["stdout"]
    identifiers = {i.lower() for p in site_truth.patients for i in p.identifiers()}
    assert len(identifiers) > 6 * len(site_truth.patients)
    hits = [(identifier, where) for identifier in identifiers for where, text in texts.items()
            if _contains(text, identifier)]
    hits += [(identifier, where) for identifier in identifiers if len(identifier) >= LONG
             for where, raw in binaries.items() if identifier in raw]
    assert hits == []
