"""The ordered parallel map under discovery and featurisation: every input once, in order, in workers."""

from __future__ import annotations

import os

from client.parallel import MIN_ITEMS_PER_WORKER, file_mapper


def _tagged(value: int) -> tuple[int, int]:
    return value * value, os.getpid()


def test_runs_of_inputs_come_back_complete_and_in_order_from_worker_processes() -> None:
    inputs = range(4 * MIN_ITEMS_PER_WORKER + 5)  # not a multiple of the run length: a short last run
    results = list(file_mapper(2)(_tagged, inputs))
    assert [square for square, _ in results] == [v * v for v in inputs]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids and len(pids) == 2


def test_too_little_work_stays_in_this_process() -> None:
    results = list(file_mapper(2)(_tagged, range(MIN_ITEMS_PER_WORKER)))
    assert {pid for _, pid in results} == {os.getpid()}
