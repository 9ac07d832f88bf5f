"""Nothing identifying reaches STATE, a log line or the command's output after `site prepare`.

Every fake name, MRN, FHIR id, birth date (both spellings), phone, address part, accession number and
sample id of the synthetic patients is searched for in every file under STATE (cache entries are
loaded and every string inside them checked, and their raw bytes searched too), in the site log, and
in what `polyclinic -v site prepare` printed.
"""

from __future__ import annotations

import os
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


def _texts(state: Path) -> dict[str, str]:
    """Every file under STATE as searchable text: decoded bytes, plus the strings inside cache entries."""
    texts = {}
    for path in state.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        text = raw.decode("latin-1")
        if path.suffix == ".pt":
            text += "\n".join(_strings(torch.load(path, weights_only=True)))
        texts[str(path.relative_to(state))] = text.lower()
    return texts


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
    texts = _texts(state)
    assert any(name.startswith("logs/") for name in texts) and any(n.endswith(".pt") for n in texts)
    texts["stdout"], texts["stderr"] = result.stdout.lower(), result.stderr.lower()
    assert "patients" in texts["stdout"] and "site.run" not in texts["stderr"]
    identifiers = {i for p in site_truth.patients for i in p.identifiers()}
    assert len(identifiers) > 6 * len(site_truth.patients)
    hits = [(identifier, where) for identifier in identifiers for where, text in texts.items()
            if identifier.lower() in text]
    assert hits == []
