"""Featurising many items on several cores, with PyTorch's DataLoader workers.

Decoding and de-identifying images is CPU-bound Python (pydicom), so threads do not help; the
DataLoader's worker processes do, and they are the tool MONAI and PyTorch already use for data
preparation (one torch thread per worker, ordered results, clean shutdown). Workers write their cache
entries themselves and return only small outcomes: no features travel between processes.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from torch.utils.data import DataLoader, Dataset

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
    key: str
    outcome: Outcome
    """Without features (they are in the cache, or not needed): only what the report counts."""


def _featurise_one(task: Task, pipelines: dict[str, ItemPipeline], pseudonymiser: Pseudonymiser,
                   index_date: dt.date) -> Done:
    pipeline = pipelines[task.modality]
    ctx = DeidContext(pseudonymiser, task.pseudonym, index_date)
    outcome = pipeline.features(task.item, ctx)
    accepted = {} if outcome.features is not None else None
    return Done(task, pipeline.cache_key(task.item, ctx), replace(outcome, features=accepted))


class _Chunks(Dataset):
    """``fn`` over consecutive runs of ``inputs``: one worker round trip per run, not per input."""

    def __init__(self, fn: Callable[[Any], Any], inputs: Sequence[Any], size: int) -> None:
        self.fn, self.inputs, self.size = fn, inputs, size

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.size)

    def __getitem__(self, index: int) -> list[Any]:
        return [self.fn(value) for value in self.inputs[index * self.size:(index + 1) * self.size]]


CHUNKS_PER_WORKER = 8
"""Enough runs per worker to even out uneven items, few enough that the round trips stay cheap."""


def _ordered_map(fn: Callable[[Any], Any], inputs: Sequence[Any], workers: int) -> Iterator[Any]:
    """``fn(x)`` for every input, in order; in ``workers`` forked processes when there is enough work.

    A worker's result travels back through a pipe, pickled; for a file whose work takes a few tenths of
    a millisecond that round trip costs as much as the work, so inputs go out in runs
    (:data:`CHUNKS_PER_WORKER` per worker). fork: workers inherit ``fn`` and ``inputs`` (pipelines, the
    pseudonymiser) without pickling the site's secret.
    """
    workers = min(workers, len(inputs) // MIN_ITEMS_PER_WORKER)
    if workers <= 1:
        return map(fn, inputs)
    runs = _Chunks(fn, inputs, -(-len(inputs) // (workers * CHUNKS_PER_WORKER)))
    loader = DataLoader(runs, batch_size=None, num_workers=workers, multiprocessing_context="fork",
                        collate_fn=_identity)
    return (result for run in loader for result in run)


def file_mapper(workers: int) -> Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]:
    """A ``map`` for a modality's per-file discovery work, spread over ``workers`` processes."""

    def map_files(fn: Callable[[Any], Any], inputs: Iterable[Any]) -> Iterator[Any]:
        return _ordered_map(fn, list(inputs), workers)

    return map_files


def featurise(tasks: Sequence[Task], pipelines: dict[str, ItemPipeline], pseudonymiser: Pseudonymiser,
              index_date: dt.date, workers: int) -> Iterator[Done]:
    """Outcomes in task order; in ``workers`` processes when there is enough work to pay for them."""
    work = partial(_featurise_one, pipelines=pipelines, pseudonymiser=pseudonymiser, index_date=index_date)
    return _ordered_map(work, tasks, workers)


def _identity(value: Any) -> Any:
    return value
