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


class _Apply(Dataset):
    def __init__(self, fn: Callable[[Any], Any], inputs: Sequence[Any]) -> None:
        self.fn, self.inputs = fn, inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> Any:
        return self.fn(self.inputs[index])


def _ordered_map(dataset: Dataset, workers: int) -> Iterator[Any]:
    """``dataset[i]`` for every i, in order; in ``workers`` forked processes when there is enough work.

    fork: workers inherit the dataset (pipelines, the pseudonymiser) without pickling the site's secret.
    """
    workers = min(workers, len(dataset) // MIN_ITEMS_PER_WORKER)
    if workers <= 1:
        return (dataset[i] for i in range(len(dataset)))
    return iter(DataLoader(dataset, batch_size=None, num_workers=workers, multiprocessing_context="fork",
                           collate_fn=_identity))


def file_mapper(workers: int) -> Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]:
    """A ``map`` for a modality's per-file discovery work, spread over ``workers`` processes."""

    def map_files(fn: Callable[[Any], Any], inputs: Iterable[Any]) -> Iterator[Any]:
        return _ordered_map(_Apply(fn, list(inputs)), workers)

    return map_files


def featurise(tasks: Sequence[Task], pipelines: dict[str, ItemPipeline], pseudonymiser: Pseudonymiser,
              index_date: dt.date, workers: int) -> Iterator[Done]:
    """Outcomes in task order; in ``workers`` processes when there is enough work to pay for them."""
    work = partial(_featurise_one, pipelines=pipelines, pseudonymiser=pseudonymiser, index_date=index_date)
    return _ordered_map(_Apply(work, tasks), workers)


def _identity(value: Any) -> Any:
    return value
