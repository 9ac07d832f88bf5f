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

import pytest
from leak_search import leaks, texts_under


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
    texts, binaries = texts_under(state)
    assert any(name.startswith("logs/") for name in texts) and any(n.endswith(".pt") for n in texts)
    assert "client.site" in texts["logs/polyclinic.log"]  # the log really holds the run's lines
    texts["stdout"], texts["stderr"] = result.stdout.lower(), result.stderr.lower()
    assert "patients" in texts["stdout"]
    identifiers = {i.lower() for p in site_truth.patients for i in p.identifiers()}
    assert len(identifiers) > 6 * len(site_truth.patients)
    assert leaks(texts, binaries, identifiers) == []
