"""Fixtures for the deployment tests: a loopback federation that is always torn down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback import HOSPITALS, Loopback


@pytest.fixture
def loopback(tmp_path) -> Iterator[Loopback]:
    """Keys for three hospitals and a running SuperLink (TLS, node auth); no SuperNode yet."""
    with Loopback(tmp_path / "federation", HOSPITALS) as federation:
        federation.start_superlink()
        yield federation
