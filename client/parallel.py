"""Featurising many items on several cores: this process and forked workers share runs of inputs.

Decoding and de-identifying images is CPU-bound Python (pydicom), so threads do not help; processes
do. Workers write their cache entries themselves and return only small outcomes: no features travel
between processes.

This process works too, beside ``workers - 1`` forked ones, instead of waiting on a pool of
``workers``: one fork instead of two per map on two cores, and no core left to a parent that only
collects results. The imaging prepare of the three synthetic sites (discovery, then featurising) took
877 ms against 1,068 ms with a PyTorch DataLoader of two workers (medians of 5, 2026-12-05;
``docs/benchmarks.md``, site pipeline).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from client.item_pipeline import ItemPipeline, Outcome
from modalities.base import Item
from privacy.deidentify import DeidContext
from privacy.pseudonym import Pseudonymiser


def default_workers() -> int:
    """One worker per core this process may use, at most four (I/O and memory stay modest)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


MIN_ITEMS_PER_WORKER = 32
"""Below this many items per worker, starting processes costs more than it saves."""


@dataclass(frozen=True)
class Task:
    pseudonym: str
    modality: str
    item: Item


@dataclass(frozen=True)
class Done:
    task: Task
    outcome: Outcome
    """Without features (they are in the cache, or not needed): its cache key and what the report counts."""


def _featurise_run(tasks: Sequence[Task], pipelines: dict[str, ItemPipeline], pseudonymiser: Pseudonymiser,
                   index_date: dt.date) -> list[Done]:
    """A run of tasks, each modality's share through its pipeline stage by stage
    (:meth:`ItemPipeline.features_of`); results in task order."""
    done: dict[int, Done] = {}
    for modality, pipeline in pipelines.items():
        mine = [n for n, task in enumerate(tasks) if task.modality == modality]
        ctxs = [DeidContext(pseudonymiser, tasks[n].pseudonym, index_date) for n in mine]
        outcomes = pipeline.features_of([tasks[n].item for n in mine], ctxs)
        for n, outcome in zip(mine, outcomes, strict=True):
            accepted = {} if outcome.features is not None else None
            done[n] = Done(tasks[n], replace(outcome, features=accepted))
    return [done[n] for n in range(len(tasks))]


CHUNKS_PER_WORKER = 8
"""Enough runs per process to even out uneven items, few enough that the round trips stay cheap."""
MAX_RUN = 32
"""Items in one run at most: a run's contents (decoded images) are in memory together."""

RunFn = Callable[[Sequence[Any]], list[Any]]
"""Results for a run of consecutive inputs, one per input."""


def _run_length(count: int, processes: int) -> int:
    """How many consecutive inputs go out together when ``count`` are shared by ``processes``: a result's
    round trip through a pipe costs about what a file's discovery does, so inputs do not go one by one."""
    return max(1, min(MAX_RUN, -(-count // (processes * CHUNKS_PER_WORKER))))


class _Runs:
    """Consecutive runs of the inputs, handed out one at a time to whichever process asks first.

    The next run's number lives in shared memory, so this process and its forked workers balance the
    load between them without a coordinator.
    """

    def __init__(self, fn: RunFn, inputs: Sequence[Any], processes: int) -> None:
        self.fn, self.inputs = fn, inputs
        self.size = _run_length(len(inputs), processes)
        self.count = -(-len(inputs) // self.size)
        self._next = multiprocessing.get_context("fork").Value("i", 0)

    def take(self) -> int | None:
        """The number of a run nobody has taken yet, or None when all are taken."""
        with self._next.get_lock():
            index = self._next.value
            self._next.value += 1
        return index if index < self.count else None

    def run(self, index: int) -> list[Any]:
        return self.fn(self.inputs[index * self.size:(index + 1) * self.size])


def _work(runs: _Runs, results: Connection) -> None:
    """A forked worker: take runs until none are left, sending each run's results (or its error) back."""
    torch.set_num_threads(1)  # two processes on two cores: one thread each, or they contend
    while (index := runs.take()) is not None:
        try:
            results.send((index, runs.run(index)))
        except Exception as exc:  # noqa: BLE001  (re-raised in the parent, as map() would raise it)
            results.send((index, exc))
            break
    results.close()


def _shared_map(fn: RunFn, inputs: Sequence[Any], workers: int) -> Iterator[Any]:
    """``fn`` over ``inputs`` in this process and ``workers - 1`` forked ones; results in input order,
    yielded as soon as every earlier run is done, so progress shows while the work goes on."""
    runs = _Runs(fn, inputs, workers)
    context = multiprocessing.get_context("fork")  # fn and inputs are inherited: the site key is not pickled
    connections, processes = [], []
    for _ in range(workers - 1):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_work, args=(runs, send), daemon=True)
        process.start()
        send.close()
        connections.append(receive)
        processes.append(process)
    done: dict[int, list[Any] | Exception] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    finished = False
    try:
        for index in range(runs.count):
            while index not in done:
                if (mine := runs.take()) is not None:
                    done[mine] = runs.run(mine)
                _collect(connections, done, block=mine is None)
            results = done.pop(index)
            if isinstance(results, Exception):
                raise results
            yield from results
        finished = True
    finally:
        torch.set_num_threads(threads)
        for process in processes:
            if not finished:  # an error, or the caller stopped early: the rest of the work is not wanted
                process.terminate()
            process.join()


def _collect(connections: list[Connection], done: dict[int, Any], *, block: bool) -> None:
    """Results the workers have sent; with ``block``, wait for at least one (this process has no run
    left to do). A worker that ends without sending its runs died: say so rather than wait forever."""
    if block and not connections:
        raise RuntimeError("a worker process ended before finishing its share of the work "
                           "(killed, out of memory, or a crash in a native library)")
    for connection in wait(connections, timeout=None if block else 0):
        try:
            index, results = connection.recv()
        except EOFError:
            connections.remove(connection)
            continue
        done[index] = results


def _ordered_map(fn: RunFn, inputs: Sequence[Any], workers: int) -> Iterator[Any]:
    """``fn`` over runs of the inputs, results in input order; shared with forked workers when there is
    enough work."""
    workers = min(workers, len(inputs) // MIN_ITEMS_PER_WORKER)
    if workers > 1:
        return _shared_map(fn, inputs, workers)
    size = _run_length(len(inputs), 1)
    return (result for start in range(0, len(inputs), size) for result in fn(inputs[start:start + size]))


def _each(fn: Callable[[Any], Any], run: Sequence[Any]) -> list[Any]:
    return [fn(value) for value in run]


def file_mapper(workers: int) -> Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]:
    """A ``map`` for a modality's per-file discovery work, spread over ``workers`` processes."""

    def map_files(fn: Callable[[Any], Any], inputs: Iterable[Any]) -> Iterator[Any]:
        return _ordered_map(partial(_each, fn), list(inputs), workers)

    return map_files


def featurise(tasks: Sequence[Task], pipelines: dict[str, ItemPipeline], pseudonymiser: Pseudonymiser,
              index_date: dt.date, workers: int) -> Iterator[Done]:
    """Outcomes in task order; in ``workers`` processes when there is enough work to pay for them."""
    work = partial(_featurise_run, pipelines=pipelines, pseudonymiser=pseudonymiser, index_date=index_date)
    return _ordered_map(work, tasks, workers)
