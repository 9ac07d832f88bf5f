"""The coordinator's wait for replies: every reply that came, as soon as the last one is in, and no longer
than the timeout when a site never answers. The grid here stands in for a SuperLink whose sites answer
at set times; the Simulation Engine and deployment tests run the same loop against Flower's real grids."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest

from server.replies import REPLY_POLL_S, send_and_receive


def message(**metadata: Any) -> Any:
    """What the loop reads of a Flower Message: its metadata (a real Message needs a running app)."""
    return SimpleNamespace(metadata=SimpleNamespace(**metadata))


class TimedSites:
    """A grid whose node ``n`` answers ``delays[n]`` seconds after the push (None: never)."""

    def __init__(self, delays: dict[int, float | None]) -> None:
        self.delays, self.pending, self.pulls = delays, {}, 0

    def push_messages(self, messages: Iterable[Any]) -> list[str]:
        ids = []
        for request in messages:
            request.metadata.message_id = uuid.uuid4().hex  # as Flower's grids do
            delay = self.delays[request.metadata.dst_node_id]
            if delay is not None:
                self.pending[request.metadata.message_id] = (time.monotonic() + delay, request)
            ids.append(request.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Any]:
        self.pulls += 1
        now, ready = time.monotonic(), []
        for message_id in set(message_ids) & set(self.pending):
            due, request = self.pending[message_id]
            if due <= now:
                del self.pending[message_id]
                node = request.metadata.dst_node_id
                ready.append(message(reply_to_message_id=message_id, src_node_id=node))
        return ready


def requests(nodes: Iterable[int]) -> list[Any]:
    return [message(dst_node_id=node, message_id="") for node in nodes]


def test_every_reply_is_read_soon_after_the_last_one_comes() -> None:
    grid = TimedSites({1: 0.05, 2: 0.3, 3: 0.0})
    started = time.monotonic()
    replies = send_and_receive(grid, requests([1, 2, 3]), timeout=30)
    waited = time.monotonic() - started
    assert sorted(r.metadata.src_node_id for r in replies) == [1, 2, 3]
    assert 0.3 <= waited < 0.3 + 10 * REPLY_POLL_S


def test_a_site_that_never_answers_costs_the_timeout_and_the_others_are_kept() -> None:
    grid = TimedSites({1: 0.0, 2: None})
    started = time.monotonic()
    replies = send_and_receive(grid, requests([1, 2]), timeout=0.4)
    waited = time.monotonic() - started
    assert [r.metadata.src_node_id for r in replies] == [1]
    assert 0.4 <= waited < 0.4 + 10 * REPLY_POLL_S
    assert grid.pulls > 2, "it kept asking until the timeout, not once"


@pytest.mark.parametrize("timeout", [0.0, 0.01])
def test_a_timeout_shorter_than_one_poll_still_asks_once(timeout: float) -> None:
    replies = send_and_receive(TimedSites({1: 0.0}), requests([1]), timeout=timeout)
    assert len(replies) == 1
