"""benchmarks/utility.py end to end on a tiny federation: it runs and its last line is the promised JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from polyclinic.study import default_study

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "utility.py"
if str(SCRIPT.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent))  # the benchmarks are scripts importing their sibling module

from utility import batch_of, prepare  # noqa: E402

RATIOS = ("fusion_over_best_single", "missing_modality_over_best_single", "worst_missing_over_best_single",
          "dp8_over_nondp", "dp1_over_nondp")


def test_utility_benchmark_reports_every_ratio_from_its_aurocs() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--patients", "40", "--seeds", "1", "--epochs", "1",
                          "--rounds", "1", "--batch", "16"], capture_output=True, text=True, check=True,
                         timeout=120, cwd=SCRIPT.parents[1]).stdout
    result = json.loads(out.strip().splitlines()[-1])
    auroc = result["auroc"]
    assert set(auroc["fusion"]) == {"concat", "gated", "late", "perceiver"}
    assert set(auroc["single_modality"]) == set(auroc["best_fusion_missing_at_test"]) == {
        "imaging", "records", "genomics"}
    for name in RATIOS:
        assert result[name] > 0
    best_single = max(auroc["single_modality"].values())
    assert result["fusion_over_best_single"] == auroc["fusion"][result["best_fusion"]] / best_single
    assert result["dp8_over_nondp"] == auroc["dp"]["eps8"] / auroc["dp"]["nondp"]
    single, missing = auroc["single_modality"], auroc["best_fusion_missing_at_test"]
    assert result["missing_modality_over_best_single"] == min(
        missing[m] / max(v for o, v in single.items() if o != m) for m in missing)
    assert result["worst_missing_over_best_single"] == min(missing.values()) / best_single
    assert set(result["best_fusion_auroc_per_site"]) == {"hospital-a", "hospital-b", "hospital-c"}
    assert all(0 <= v <= 1 for group in ("fusion", "single_modality") for v in auroc[group].values())


def test_a_seed_prepares_the_same_split_in_every_run(tmp_path: Path) -> None:
    """The pseudonym key, and with it the split, follows the seed, so runs compare code on the same
    patients; with a fresh random key per run the train patients (and their order) would differ."""
    study = default_study()

    def train_records(folder: str) -> torch.Tensor:
        return batch_of(prepare(tmp_path / folder, study, 1, 30, seed=0).train[0])["records"]

    first, again = train_records("first"), train_records("again")
    assert torch.equal(first, again)
