"""Walking a hospital's folder safely: any shape, symlink loops, unreadable entries, hidden clutter.

Every modality discovers its files through :func:`walk_files`, so a loop or an unreadable folder
becomes a counted rejection instead of a hang or a crash, the same way for every kind of data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from modalities.base import Rejection

_CHUNK = 1 << 20


@dataclass
class Walk:
    """Regular files found under a root (sorted, so runs are reproducible) and what could not be walked."""

    files: list[Path] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def relative(path: Path, site_root: Path) -> str:
    """The path as the data steward sees it: relative to the site folder when inside it."""
    try:
        return path.relative_to(site_root).as_posix()
    except ValueError:
        return path.as_posix()


def walk_files(root: Path, *, modality: str, site_root: Path | None = None) -> Walk:
    """All regular files under ``root``, following symlinks once each.

    Hidden entries (``.DS_Store``, ``.polyclinic`` state) are ignored. A directory reached twice through
    symlinks is a loop and is rejected with ``<modality>.symlink-loop``; an unreadable directory or a
    dangling link is rejected with ``<modality>.unreadable``.
    """
    site_root = site_root or root.parent
    walk = Walk()
    if not root.is_dir():
        return walk
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            walk.rejections.append(_unreadable(modality, folder, site_root, exc))
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            walk.rejections.append(Rejection(
                f"{modality}.symlink-loop", relative(folder, site_root),
                "this folder was already visited through another path (a symbolic link loop)",
                "remove the link or point it outside the site folder"))
            continue
        seen.add(ident)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            walk.rejections.append(_unreadable(modality, folder, site_root, exc))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=True):
                    subfolders.append(path)
                elif entry.is_file(follow_symlinks=True):
                    walk.files.append(path)
                else:
                    walk.rejections.append(Rejection(
                        f"{modality}.unreadable", relative(path, site_root),
                        "not a regular file (a dangling link, a socket or a device)",
                        "replace it with the file it should point to, or remove it"))
            except OSError as exc:
                walk.rejections.append(_unreadable(modality, path, site_root, exc))
        stack.extend(reversed(subfolders))
    walk.files.sort()
    return walk


def _unreadable(modality: str, path: Path, site_root: Path, exc: OSError) -> Rejection:
    return Rejection(f"{modality}.unreadable", relative(path, site_root),
                     f"cannot be read ({exc.strerror or type(exc).__name__})",
                     "check the file permissions for the user running the client")


def fingerprint(*paths: Path) -> str:
    """SHA-256 over the bytes of ``paths`` in order: the identity of an item's inputs for caching."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
