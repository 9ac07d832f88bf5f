"""Checking a trail: every link, hash and signature, against a pinned key and against anchors.

``verify`` walks the entries in storage order and stops at the first one it cannot vouch for, naming
it and why. Without a pinned public key it can only use the key the database itself states, which an
attacker who rewrites the whole file also replaces; the result says so (``key_pinned`` False). Pinning
the key an auditor was given, or comparing with the heads the coordinator anchored (``check_anchors``),
closes that gap: a history rewritten after anchoring no longer matches the anchored hashes, whoever
signed it, and a cut-off tail no longer reaches the anchored sequence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compliance.audit_chain import GENESIS_HASH, ChainHead, Entry, fingerprint, read_trail, recomputed_hash

PROBLEMS: dict[str, str] = {
    "sequence-gap": "entries are missing before the next stored one (deleted rows)",
    "out-of-order": "an entry is stored where another belongs (moved or inserted rows)",
    "broken-link": "the entry does not point at the previous entry's hash",
    "hash-mismatch": "the entry's content does not match its hash (edited)",
    "bad-signature": "the entry's signature does not verify with the trail's key",
    "wrong-key": "the trail is signed with another key than the expected one (re-signed or wrong key given)",
    "truncated": "entries the coordinator anchored (or the expected head) are missing from the end",
    "anchor-mismatch": "the entry differs from the anchored one: history was rewritten after anchoring",
    "bad-key": "the trail's stored public key is missing or unreadable",
    "unanchored": "the coordinator's trail holds no anchor for this site, so it cannot be cross-checked",
}


@dataclass(frozen=True)
class Problem:
    code: str
    """One of ``PROBLEMS``."""
    sequence: int | None
    """The first entry that cannot be trusted (None: the trail as a whole)."""
    message: str
    trail: str


@dataclass(frozen=True)
class VerifyResult:
    path: Path
    ok: bool
    entries: int
    """Entries verified, in order, before the first problem (all of them when ok)."""
    head: ChainHead | None
    """The newest verified entry."""
    problem: Problem | None
    key_fingerprint: str | None
    key_pinned: bool
    """False: the key is only the one the database asserts about itself."""

    @property
    def first_bad(self) -> int | None:
        return self.problem.sequence if self.problem else None

    def summary(self) -> str:
        """One line for people: intact with its head and key, or the first bad entry and why."""
        if self.problem is not None:
            where = f"entry {self.problem.sequence}" if self.problem.sequence is not None else "trail"
            return f"tampered: {self.path}: {where}: {self.problem.code}: {self.problem.message}"
        head = f"head {self.head.sequence} {self.head.hash[:16]}" if self.head else "no entries"
        key = "pinned" if self.key_pinned else "self-asserted by the database; pass --public-key to pin it"
        return f"intact: {self.path}: {self.entries} entries, {head}, key {self.key_fingerprint} ({key})"

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "entries": self.entries,
                "head": self.head.as_dict() if self.head else None, "first_bad": self.first_bad,
                "problem": self.problem.code if self.problem else None,
                "message": self.problem.message if self.problem else self.summary(),
                "key_fingerprint": self.key_fingerprint, "key_pinned": self.key_pinned}


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An auditor's pinned key from a PEM file (``STATE/keys/audit-ed25519.pub`` as handed over)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: not a PEM public key ({exc}); give the audit-ed25519.pub file") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: a {type(key).__name__}, not an Ed25519 public key; give audit-ed25519.pub")
    return key


def _stored_key(meta: dict[str, str]) -> Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(str(meta.get("public_key", "")).encode())
    except ValueError:
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def _check(entry: Entry, sequence: int, prev: str, key: Ed25519PublicKey, anchors: dict[int, str],
           stored: set[Any]) -> tuple[str, str] | None:
    """The first thing wrong with ``entry`` as the ``sequence``-th entry, as (code, message), or None."""
    if entry.sequence != sequence:
        if sequence in stored:
            return "out-of-order", f"entry {entry.sequence!r} is stored where entry {sequence} belongs"
        return "sequence-gap", f"missing; the next stored entry is {entry.sequence!r}"
    if entry.prev_hash != prev:
        return "broken-link", f"points at {str(entry.prev_hash)[:16]}, the previous entry is {prev[:16]}"
    try:
        recomputed = recomputed_hash(entry)
    except TypeError:
        recomputed = None
    if recomputed != entry.hash:
        return "hash-mismatch", "its stored fields do not hash to its stored hash (edited)"
    try:
        key.verify(bytes.fromhex(entry.signature), bytes.fromhex(entry.hash))
    except (InvalidSignature, ValueError, TypeError):
        return "bad-signature", f"the signature does not verify with key {fingerprint(key)[:16]}"
    if anchors.get(sequence, entry.hash) != entry.hash:
        return "anchor-mismatch", (f"hash {entry.hash[:16]} but {anchors[sequence][:16]} was anchored: "
                                   "rewritten after anchoring")
    return None


def walk(path: Path, public_key: Ed25519PublicKey | None = None,
         anchors: Iterable[ChainHead] = ()) -> tuple[VerifyResult, list[Entry]]:
    """``verify``'s result and the entries it vouches for (the verified prefix)."""
    path = Path(path)
    meta, entries = read_trail(path)
    stored = _stored_key(meta)
    pinned = public_key is not None
    key = public_key if public_key is not None else stored
    fp = fingerprint(key) if key is not None else None

    def result(good: list[Entry], code: str | None = None, sequence: int | None = None,
               message: str = "") -> tuple[VerifyResult, list[Entry]]:
        problem = Problem(code, sequence, message, str(path)) if code else None
        head = good[-1].head if good else None
        return VerifyResult(path, problem is None, len(good), head, problem, fp, pinned), good

    if key is None:
        return result([], "bad-key", None, "the meta table holds no readable Ed25519 public key")
    if pinned and (stored is None or fingerprint(stored) != fp):
        stated = fingerprint(stored) if stored is not None else "none"
        return result([], "wrong-key", 1, f"the trail states key {stated}, expected {fp}: re-signed "
                      "with another key, or the wrong public key was given")
    expected = {a.sequence: a.hash for a in anchors}
    good: list[Entry] = []
    prev = GENESIS_HASH
    stored = {entry.sequence for entry in entries}
    for sequence, entry in enumerate(entries, start=1):
        wrong = _check(entry, sequence, prev, key, expected, stored)
        if wrong is not None:
            return result(good, wrong[0], sequence, wrong[1])
        good.append(entry)
        prev = entry.hash
    needed = max(expected, default=0)
    if not good or needed > len(good):
        reach = f"an anchor vouches for entry {needed}" if needed else "a trail starts with trail.created"
        return result(good, "truncated", len(good) + 1, f"the trail ends after {len(good)} entries; {reach}")
    return result(good)


def verify(path: Path, public_key: Ed25519PublicKey | None = None,
           anchors: Iterable[ChainHead] = ()) -> VerifyResult:
    """Check the trail at ``path`` (the .db file); AuditUnreadable if there is none to check.

    ``public_key`` pins the expected signer; ``anchors`` are heads known from elsewhere (the
    coordinator's anchors, a head written down by an auditor) that the trail must still contain.
    """
    return walk(path, public_key, anchors)[0]


def _heads(entries: list[Entry], event: str, site_id: str | None = None) -> list[ChainHead]:
    found = []
    for entry in entries:
        details = entry.details_dict() if entry.event == event else {}
        if details and (site_id is None or details.get("site") == site_id):
            found.append(ChainHead(details["sequence"], details["hash"]))
    return found


def check_anchors(site_db: Path, coordinator_db: Path, site_id: str, *,
                  site_key: Ed25519PublicKey | None = None,
                  coordinator_key: Ed25519PublicKey | None = None) -> list[Problem]:
    """Cross-check a site's trail and the coordinator's; no problems means they agree.

    The site's trail must still hold every head the coordinator anchored for ``site_id`` (catches a
    site that rewrote or cut its history, even re-signed with its own key), and the coordinator's
    trail must hold every coordinator head the site recorded (``anchor.received``): each side vouches
    for the other. Only verified entries are used as evidence.
    """
    _, site_entries = walk(site_db, site_key)
    received = _heads(site_entries, "anchor.received")
    coordinator, coordinator_entries = walk(coordinator_db, coordinator_key, received)
    anchors = _heads(coordinator_entries, "anchor", site_id)
    site = verify(site_db, site_key, anchors)
    problems = [r.problem for r in (coordinator, site) if r.problem is not None]
    if not anchors:
        message = (f"no anchor for site {site_id!r} in the coordinator's trail: it has not completed a "
                   "round, or the site id is wrong")
        problems.append(Problem("unanchored", None, message, str(coordinator_db)))
    return problems
