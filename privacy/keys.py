"""The site's secrets, created on first use and never leaving ``STATE/keys`` (mode 0700, files 0600).

Losing the pseudonym key means pseudonyms change and the cache and ledger no longer line up with
patients, so keys are created exactly once (an exclusive create, safe against two processes racing)
and an existing key with loose permissions is refused rather than silently used.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32


class UntrustedKeyError(PermissionError):
    """A key file exists but cannot be trusted (wrong size or readable by others)."""


def keys_dir(state: Path) -> Path:
    """``STATE/keys``, created with mode 0700 if missing."""
    folder = state / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def load_or_create_secret(state: Path, name: str) -> bytes:
    """The secret ``STATE/keys/<name>.key``; 32 random bytes written with mode 0600 on first use."""
    path = keys_dir(state) / f"{name}.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(KEY_BYTES))
        fh.flush()
        os.fsync(fh.fileno())
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UntrustedKeyError(f"{path}: key file is accessible to other users (mode {mode:04o}); "
                        f"run `chmod 600 {path}` and retry")
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise UntrustedKeyError(f"{path}: key file has {len(data)} bytes, expected {KEY_BYTES}; "
                        "restore it from backup (a new key would change every pseudonym)")
    return data
