"""Watching a federated run from outside: one Flower simulation in a child process, timed round by round,
and the peak memory of the whole process tree while it runs.

The child keeps each run's Ray cluster, memory and start-up apart from the next run's. Peak memory is the
largest sum of resident memory over this process and all its descendants (the child, Ray's daemons and
its workers), sampled from ``/proc`` by a thread; a process that exits between two reads is skipped.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from polyclinic.simulation import simulate
from polyclinic.study import Study
from server.replies import SiteReply
from server.rounds import RoundSummary

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: the parent pid follows the last ")"
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and its descendants (shared pages count once per process)."""
    total = 0
    for pid in process_tree(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakMemory:
    """``with PeakMemory() as peak:`` samples this process tree every ``interval`` s; ``peak.bytes`` is the
    largest sample."""

    def __init__(self, interval: float = 0.5, root: int | None = None) -> None:
        self.interval, self.root = interval, os.getpid() if root is None else root
        self.bytes, self.samples = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.bytes = max(self.bytes, tree_rss_bytes(self.root))
            self.samples += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class RoundTiming:
    round: int
    ended: float
    """Seconds from the start of ``simulate`` to this round's ``on_round`` callback."""
    train_seconds: tuple[float, ...]
    """Each replying site's own wall time for its train request (``site-seconds``: prepare + DP training)."""
    evaluate_seconds: tuple[float, ...]
    train_cpu_seconds: tuple[float, ...]
    """The same requests' CPU time in the site's process (``site-cpu-seconds``): its work, whether or not
    it had a core to itself."""
    evaluate_cpu_seconds: tuple[float, ...]
    failed: int
    """Train or evaluate replies that were refusals or errors."""
    auroc: float | None
    """Federated (example-weighted) validation AUROC of the new global model."""


@dataclass(frozen=True)
class RunTiming:
    rounds: tuple[RoundTiming, ...]
    finished: float
    """Seconds from the start of ``simulate`` to its return (the model is written, Ray is shut down)."""


def _site_seconds(replies: list[SiteReply], key: str = "site-seconds") -> tuple[float, ...]:
    return tuple(r.metrics[key] for r in replies if key in r.metrics)


def _round_timing(summary: RoundSummary, ended: float) -> RoundTiming:
    replies = [*summary.train, *summary.evaluate]
    auroc = summary.aggregated.get("auroc")
    return RoundTiming(summary.round, ended, _site_seconds(summary.train), _site_seconds(summary.evaluate),
                       _site_seconds(summary.train, "site-cpu-seconds"),
                       _site_seconds(summary.evaluate, "site-cpu-seconds"),
                       sum(1 for r in replies if r.refused or r.error), auroc)


def _child(results: multiprocessing.Queue, study_json: str, federation: Path, state_root: Path, out: Path,
           sites: int, concurrency: int | None, seed: int) -> None:
    torch.manual_seed(seed)  # the coordinator's initial global model, drawn in this process
    study = Study.model_validate_json(study_json)
    rounds: list[RoundTiming] = []
    start = time.perf_counter()
    simulate(study, federation, state_root, out, sites=sites, concurrency=concurrency,
             on_round=lambda s: rounds.append(_round_timing(s, time.perf_counter() - start)))
    results.put(RunTiming(tuple(rounds), time.perf_counter() - start))


def timed_simulation(study: Study, federation: Path, state_root: Path, out: Path, *, sites: int,
                     concurrency: int | None = None, seed: int = 0,
                     interval: float = 0.5) -> tuple[RunTiming, int]:
    """Run ``simulate`` in a fresh child process whose torch RNG (the initial global model) is seeded with
    ``seed`` (``concurrency``: see ``simulate``); returns its timings and the tree's peak memory (bytes)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_child, args=(results, study.model_dump_json(), federation, state_root,
                                                 out, sites, concurrency, seed))
    with PeakMemory(interval) as memory:
        child.start()
        while True:
            try:
                timing = results.get(timeout=1.0)
                break
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the simulation of {sites} sites in {out} ended (exit code "
                                       f"{child.exitcode}) without timings; its site logs are under "
                                       f"{state_root}/<site>/logs") from None
        child.join()
    return timing, memory.bytes


RAY_STARTUP = """
import os, time, ray
start = time.perf_counter()
ray.init(num_cpus=os.cpu_count(), log_to_driver=False, include_dashboard=False, logging_level="error")
up = time.perf_counter() - start
ray.shutdown()
print(up)
"""


def ray_startup_seconds() -> float:
    """Seconds ``ray.init`` takes alone (Ray imported already), with the simulation's init arguments."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    out = subprocess.run([sys.executable, "-c", RAY_STARTUP], capture_output=True, text=True, check=True,
                         env=env, timeout=300).stdout
    return float(out.strip().splitlines()[-1])
