"""benchmarks/federation.py: its arithmetic, its memory probe on a real process tree, and one tiny run of
every step (prepare, a federated run in Flower's Simulation Engine, the pooled baseline, the AUROCs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # the benchmarks are scripts importing their sibling module

import federation  # noqa: E402
from federation_probe import PAGE_BYTES, PeakMemory, RoundTiming, RunTiming, process_tree, tree_rss_bytes  # noqa: E402
from utility import batch_of  # noqa: E402

from client.cohort_dataset import CohortDataset  # noqa: E402

MB = 1024 * 1024


def test_critical_path_is_the_longest_site_or_the_total_spread_over_the_workers() -> None:
    assert federation.critical_path([10.0, 1.0, 1.0], 2) == 10.0
    assert federation.critical_path([4.0, 4.0, 4.0], 2) == 6.0
    assert federation.critical_path([], 2) == 0.0


def test_round_breakdown_charges_everything_but_the_sites_computation_to_the_federation() -> None:
    timing = RunTiming((RoundTiming(1, 25.0, (9.0, 9.0, 9.0), (1.5, 1.5), (6.0, 6.0, 6.0), (1.0, 1.0), 0,
                                    0.7),
                        RoundTiming(2, 40.0, (6.0, 4.0), (0.5, 0.5), (6.0, 4.0), (0.5, 0.5), 1, 0.8)),
                       finished=41.0)
    first, second = federation.round_breakdown(timing, cores=2, startup=5.0)
    assert first["wall_s"] == 20.0  # from the start of simulate, less Ray's start-up
    # CPU seconds, not the sites' wall times (inflated while three sites share two cores)
    assert first["local_train_s"] == 9.0 and first["local_evaluate_s"] == 1.0
    assert first["overhead_fraction"] == pytest.approx(0.5)
    assert second["wall_s"] == 15.0 and second["local_train_s"] == 6.0 and second["local_evaluate_s"] == 0.5
    assert second["overhead_s"] == pytest.approx(8.5) and second["failed_replies"] == 1
    assert first["site_train_s"] == [9.0, 9.0, 9.0] and first["site_train_cpu_s"] == [6.0, 6.0, 6.0]


def test_peak_memory_counts_a_child_process_that_holds_memory() -> None:
    held = 300
    child = subprocess.Popen([sys.executable, "-c", f"b = bytearray({held} * 2**20); b[::4096] = b'x' * "
                              f"len(b[::4096]); import time; print(1, flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline()  # the memory is touched now
        assert child.pid in process_tree(os.getpid())
        alone = tree_rss_bytes(child.pid)
        with PeakMemory(interval=0.05) as peak:
            time.sleep(0.3)
        assert alone >= held * MB
        own = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_BYTES
        assert peak.samples >= 2 and peak.bytes >= own + alone - 20 * MB  # this process and its child
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_a_tiny_federation_runs_every_step_of_the_benchmark(tmp_path: Path) -> None:
    study = federation.study_for(rounds=1, batch=8, accountant="rdp")
    prepared = federation.prepare(tmp_path, sites=2, patients=30, study=study)
    assert prepared.ids == ["hospital-a", "hospital-b"] and prepared.generate_seconds > 0
    timing, peak = federation.federated_run(prepared, 2, study, tmp_path / "run", concurrency=None, seed=0)
    assert [r.round for r in timing.rounds] == [1] and timing.finished > timing.rounds[0].ended
    (only,) = timing.rounds
    assert len(only.train_seconds) == len(only.evaluate_seconds) == 2 and only.failed == 0
    assert all(0 < s < only.ended for s in only.train_seconds)
    assert all(0 < s < only.ended for s in only.train_cpu_seconds)
    (row,) = federation.round_breakdown(timing, cores=2, startup=0.0)
    assert 0 < row["overhead_fraction"] < 1
    assert peak > 500 * MB  # this process, the simulation and Ray's workers, each with torch loaded
    # the run's sites spent their budget in their own copies; the prepared states stay unspent
    assert (tmp_path / "run" / "state" / "hospital-a" / "ledger.db").exists()
    assert not (prepared.pristine / "hospital-a" / "ledger.db").exists()
    weights = federation.torch.load(tmp_path / "run" / "out" / "model" / federation.MODEL_FILE,
                                    weights_only=True)
    federated = federation.held_out(study, weights, prepared)
    pooled = federation.held_out(study, federation.pooled_weights(study, prepared, 0, tmp_path), prepared)
    assert federated is not None and pooled is not None and 0 <= federated <= 1 and 0 <= pooled <= 1


def test_a_seed_prepares_the_same_split_in_every_run(tmp_path: Path) -> None:
    """As in utility.py, the pseudonym keys (and so the split) follow the seed, so runs of the benchmark
    compare code on the same patients."""
    study = federation.study_for(rounds=1, batch=8, accountant="rdp")

    def train_records(folder: str) -> torch.Tensor:
        prepared = federation.prepare(tmp_path / folder, sites=1, patients=30, study=study, seed=3)
        return batch_of(CohortDataset(prepared.pristine / prepared.ids[0], study, "train"))["records"]

    assert torch.equal(train_records("first"), train_records("again"))
