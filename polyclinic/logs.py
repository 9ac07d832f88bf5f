"""Where log lines go: stderr for warnings, ``STATE/logs/polyclinic.log`` for the site's own record.

Log lines carry counts, reason codes and pseudonyms only; the leak tests read this file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_stderr(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=FORMAT)


@contextmanager
def site_log(state: Path) -> Iterator[Path]:
    """Append INFO and above to the site's log file for the duration of one command."""
    folder = state / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "polyclinic.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
