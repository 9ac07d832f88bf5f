"""benchmarks/input_signal.py end to end on a tiny federation: every set of modalities is scored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "input_signal.py"


def test_input_signal_scores_every_set_of_modalities_and_divides_its_own_aurocs() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--patients", "40", "--seeds", "1"],
                         capture_output=True, text=True, check=True, timeout=120, cwd=SCRIPT.parents[1],
                         ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    auroc = result["auroc"]
    assert set(auroc) == {"imaging", "records", "genomics", "imaging+records", "imaging+genomics",
                          "records+genomics", "imaging+records+genomics"}
    assert all(0 <= v <= 1 for v in auroc.values())
    best = result["best_single"]
    assert auroc[best] == max(auroc["imaging"], auroc["records"], auroc["genomics"])
    rest = "+".join(m for m in ("imaging", "records", "genomics") if m != best)
    assert result["others_over_best"] == auroc[rest] / auroc[best]
