"""The ordered parallel map under discovery and featurisation: every input once, in order, in workers."""

from __future__ import annotations

import os
import time
from functools import partial

import pytest
import torch

from client.parallel import MIN_ITEMS_PER_WORKER, file_mapper


def _tagged(value: int) -> tuple[int, int]:
    time.sleep(0.001)  # work that lasts: the worker, started a few milliseconds late, gets its share
    return value * value, os.getpid()


def test_runs_of_inputs_come_back_complete_and_in_order_from_this_process_and_a_worker() -> None:
    inputs = range(4 * MIN_ITEMS_PER_WORKER + 5)  # not a multiple of the run length: a short last run
    results = list(file_mapper(2)(_tagged, inputs))
    assert [square for square, _ in results] == [v * v for v in inputs]
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2


def test_too_little_work_stays_in_this_process() -> None:
    results = list(file_mapper(2)(_tagged, range(MIN_ITEMS_PER_WORKER)))
    assert {pid for _, pid in results} == {os.getpid()}


def _fails_on_the_last(value: int) -> int:
    if value == 4 * MIN_ITEMS_PER_WORKER - 1:
        raise ValueError(f"bad input {value}")
    return value


def test_an_error_in_either_process_is_raised_as_map_would_raise_it() -> None:
    inputs = range(4 * MIN_ITEMS_PER_WORKER)
    with pytest.raises(ValueError, match="bad input"):
        list(file_mapper(2)(_fails_on_the_last, inputs))
    with pytest.raises(ValueError, match="bad input"):
        list(file_mapper(2)(_fails_on_the_last, reversed(inputs)))


def _dies_in_a_worker(value: int, parent: int) -> int:
    if os.getpid() != parent:
        os._exit(9)  # what the kernel's OOM killer or a segfaulting decoder leaves behind
    time.sleep(0.001)
    return value


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(RuntimeError, match="worker process ended"):
        list(file_mapper(2)(partial(_dies_in_a_worker, parent=os.getpid()), range(4 * MIN_ITEMS_PER_WORKER)))


def test_torch_threads_are_restored_after_the_map() -> None:
    threads = torch.get_num_threads()
    list(file_mapper(2)(_tagged, range(4 * MIN_ITEMS_PER_WORKER)))
    assert torch.get_num_threads() == threads
