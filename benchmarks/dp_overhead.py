"""DP-SGD step cost on the default study's fusion model: DP step time / non-DP step time, and memory.

The model, its trainable parameters and the batch (64, the study's layout) are the same both ways; the
DP side is Opacus's ``make_private`` (per-sample gradients, clipping, noise) in each grad-sample mode,
the one the study configures reported as ``time_ratio``. Steps are interleaved across variants, repeated,
and medians taken. Memory is the peak resident-set growth of a fresh process over its own baseline
while it trains (CPU PyTorch has no allocator peak counter), as ``memory_ratio``. Last line: JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import torch
from opacus.accountants import create_accountant
from torch.utils.data import DataLoader

from modalities.fusion.examples import example_batch
from modalities.fusion.model import count_trainable_parameters, create_model
from polyclinic.study import default_study
from privacy.dp_settings import DPSettings
from privacy.dp_steps import Trainable, make_optimizer, plain, train_step, wrap_private

BATCH = 64
MODES = ("hooks", "ghost", "functorch")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _trainable(mode: str, batch: dict[str, torch.Tensor]) -> Trainable:
    study = default_study()
    model = create_model(study)
    samples = [{k: v[i] for k, v in batch.items()} for i in range(BATCH)]
    if mode == "plain":
        return plain(model, samples, study.dp, torch.Generator().manual_seed(0))
    settings = DPSettings(**{**study.dp.model_dump(), "grad_sample_mode": mode})
    loader = DataLoader(samples, batch_size=BATCH)
    accountant = create_accountant(settings.accountant).state_dict()
    trainable, _ = wrap_private(model, make_optimizer(model, settings), loader, settings=settings,
                                noise_multiplier=1.0, accountant_state=accountant,
                                noise_generator=torch.Generator().manual_seed(0))
    return trainable


def _step_seconds(trainable: Trainable, batch: dict[str, torch.Tensor], steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        train_step(trainable, batch)
    return (time.perf_counter() - started) / steps


def _resident_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE_KIB


def _memory_probe(mode: str, steps: int) -> int:
    """Peak resident-set growth (KiB) over the post-setup baseline while the first ``steps`` steps run,
    sampled every millisecond (freed memory stays resident afterwards, so only a fresh process tells)."""
    batch = example_batch(default_study(), BATCH, generator=torch.Generator().manual_seed(1))
    trainable = _trainable(mode, batch)
    gc.collect()
    baseline, peak, done = _resident_kib(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _resident_kib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for _ in range(steps):
        train_step(trainable, batch)
    done.set()
    sampler.join()
    return max(peak[0], _resident_kib()) - baseline


def _probe(mode: str, steps: int) -> int:
    out = subprocess.run([sys.executable, __file__, "--memory-probe", mode, "--steps", str(steps)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--memory-probe", choices=("plain", *MODES))
    args = parser.parse_args()
    if args.memory_probe:
        print(_memory_probe(args.memory_probe, args.steps))
        return
    study = default_study()
    batch = example_batch(study, BATCH, generator=torch.Generator().manual_seed(1))
    variants = {mode: _trainable(mode, batch) for mode in ("plain", *MODES)}
    for trainable in variants.values():  # warm-up: first calls allocate and build hooks
        _step_seconds(trainable, batch, 2)
    times: dict[str, list[float]] = {mode: [] for mode in variants}
    for _ in range(args.repeats):
        for mode, trainable in variants.items():
            times[mode].append(_step_seconds(trainable, batch, args.steps))
    median = {mode: statistics.median(t) for mode, t in times.items()}
    memory = {mode: statistics.median(_probe(mode, args.steps) for _ in range(3))
              for mode in ("plain", study.dp.grad_sample_mode)}
    configured = study.dp.grad_sample_mode
    print(json.dumps({
        "fusion": study.fusion.fusion,
        "trainable_parameters": count_trainable_parameters(create_model(study)),
        "batch": BATCH, "threads": torch.get_num_threads(), "grad_sample_mode": configured,
        "step_ms": {mode: round(1000 * t, 3) for mode, t in median.items()},
        "time_ratio_by_mode": {mode: median[mode] / median["plain"] for mode in MODES},
        "time_ratio": median[configured] / median["plain"],
        "peak_rss_growth_kib": memory, "memory_ratio": memory[configured] / max(memory["plain"], 1),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
