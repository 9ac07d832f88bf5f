"""Where log lines go: stderr for warnings, ``STATE/logs/polyclinic.log`` for the site's own record.

Log lines carry counts, reason codes and pseudonyms only; the leak tests read this file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OWN_PACKAGES = ("polyclinic", "client", "server", "modalities", "privacy", "compliance")


class OwnPackagesOnly(logging.Filter):
    """Passes only this project's log records.

    Third-party libraries log what they see: pydicom's warnings quote element values (a malformed
    birth date) and file paths, which may identify a patient. Our own lines carry counts and codes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in OWN_PACKAGES


def _unfiltered(handler: logging.Handler) -> bool:
    """A bare console handler on the root logger, as ``logging.basicConfig()`` installs."""
    return type(handler) is logging.StreamHandler and not handler.filters and \
        getattr(handler, "stream", None) in (sys.stderr, sys.stdout)


def configure_stderr(verbose: bool) -> None:
    """Our own warnings (INFO with ``-v``) on stderr; Python warnings become log records, so a
    library's warning that quotes a value or a path is filtered like any third-party log line."""
    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, "polyclinic_stderr", False) or _unfiltered(h)]:
        # ours: main() may run more than once in a process (tests, embedding); unfiltered: a library's
        # logging.basicConfig() at import (Opacus does it) would print third-party lines, paths included
        root.removeHandler(previous)
    handler = logging.StreamHandler()
    handler.polyclinic_stderr = True  # type: ignore[attr-defined]
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(OwnPackagesOnly())
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)


@contextmanager
def site_log(state: Path) -> Iterator[Path]:
    """Append INFO and above to the site's log file for the duration of one command."""
    folder = state / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "polyclinic.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    handler.addFilter(OwnPackagesOnly())
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
