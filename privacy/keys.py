"""The site's secrets, created on first use and never leaving ``STATE/keys`` (mode 0700, files 0600).

Losing the pseudonym key means pseudonyms change and the cache and ledger no longer line up with
patients, so keys are created exactly once (an exclusive create, safe against two processes racing)
and an existing key with loose permissions is refused rather than silently used.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

KEY_BYTES = 32
KEYS_FOLDER = "keys"


class UntrustedKeyError(PermissionError):
    """A key file exists but cannot be trusted (wrong size or readable by others)."""


def keys_dir(state: Path) -> Path:
    """``STATE/keys``, created with mode 0700 if missing."""
    folder = state / KEYS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def secret_path(state: Path, name: str) -> Path:
    """``STATE/keys/<name>.key``; creates nothing, so asking whether a key exists never makes its folder."""
    return state / KEYS_FOLDER / f"{name}.key"


def load_or_create_secret(state: Path, name: str) -> bytes:
    """The secret ``STATE/keys/<name>.key``; 32 random bytes written with mode 0600 on first use.

    The secret is written in full to a private temporary file and then hard-linked into place, which
    fails if the key exists: a racing process never sees a half-written key, and only one key wins.
    """
    folder, path = keys_dir(state), secret_path(state, name)
    if path.exists():
        return _read_secret(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-")  # mkstemp creates it with mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    finally:
        os.unlink(tmp)
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
