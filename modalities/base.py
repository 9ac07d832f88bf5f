"""The one interface every kind of site data implements, and the registry that finds them.

A modality turns a folder of a hospital's files into per-patient items (``discover``), checks and
parses one item into typed, still-identifying content (``read``) and turns de-identified content
into model-ready features (``features``). The Site (client/site.py) walks each patient through these
steps and applies the privacy step between ``read`` and ``features``, so a modality never has to
know how de-identification is done and features never see identifying data.

A bad item never stops a run: ``discover`` returns rejections beside the items it found, and
``read``/``features`` raise :class:`ItemRejected` carrying a :class:`Rejection`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

FileMapper = Callable[[Callable[[Path], Any], Iterable[Path]], Iterator[Any]]
"""``map``-like: applies per-file work to files, possibly in several processes, results in order."""


@dataclass(frozen=True)
class Rejection:
    """Why one file, resource or row cannot be used.

    ``code`` is stable and machine-readable (``"<modality>.<reason>"``, e.g. ``"imaging.no-pixels"``);
    ``where`` locates the input relative to the site folder (``path`` or ``path#fragment``) so the data
    steward can find it; ``message`` says what is wrong and ``hint`` what to do. ``where`` may carry
    identifying text (hospital folder names often do), so only the Site's local report shows it; logs,
    STATE and anything that leaves the site carry ``code`` and counts only.
    """

    code: str
    where: str
    message: str
    hint: str = ""


class ItemRejected(Exception):
    """Raised by ``read`` or ``features`` when one item cannot be used; the run goes on."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.code}: {rejection.message}")
        self.rejection = rejection


@dataclass(frozen=True)
class Item:
    """All of one modality's data for one patient (the chosen DICOM series, the patient's FHIR
    resources, the patient's genomics row): ``discover`` yields at most one item per patient and
    counts what it set aside (extra series, duplicate rows) as rejections or in ``skipped``.

    ``patient_id`` is the raw site identifier: it lives in memory only and the Site replaces it with a
    pseudonym before anything is cached, logged or counted. ``fingerprint`` is a digest of every input
    byte the item depends on, so a changed file invalidates its cache entry. ``payload`` is the
    modality's own handle (file list, parsed resources, a row) and is opaque to everyone else.
    """

    modality: str
    patient_id: str
    where: str
    fingerprint: str
    payload: Any = field(default=None, compare=False, repr=False)


@dataclass
class Discovery:
    """What ``discover`` found under one modality folder: usable items, rejections, and how many
    inputs (files, resources, rows) it looked at, so found = used + rejected can be audited."""

    modality: str
    found: int = 0
    items: list[Item] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """Inputs deliberately ignored (e.g. FHIR resource types outside the study), counted by kind."""
    notes: list[str] = field(default_factory=list)
    """Non-identifying findings the steward should see that reject nothing (e.g. panel genes absent)."""


@runtime_checkable
class Modality(Protocol):
    """A kind of site data. Implementations are registered with :func:`register_modality`."""

    name: ClassVar[str]
    folder: ClassVar[str]
    """Sub-folder of the site holding this modality's files (``imaging``, ``records``, ``genomics``)."""

    def discover(self, root: Path, map_files: FileMapper = map) -> Discovery:
        """List the items under ``root`` (the modality folder) without computing features.

        ``map_files`` is how per-file work may be spread over processes (the Site passes a worker
        pool); a modality whose discovery is cheap may ignore it.
        """
        ...

    def read(self, item: Item) -> Any:
        """Parse and check one item; raise :class:`ItemRejected` if it cannot be used."""
        ...

    def features(self, content: Any) -> dict[str, Any]:
        """Turn de-identified content into model-ready arrays and scalars."""
        ...


_REGISTRY: dict[str, type] = {}


def register_modality(cls: type, *, force: bool = False) -> type:
    """Class decorator adding a modality to the registry; refuses to overwrite unless ``force``."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls and not force:
        raise ValueError(f"modality {name!r} is already registered by {_REGISTRY[name].__qualname__}; "
                         "pass force=True to replace it")
    _REGISTRY[name] = cls
    return cls


def modality_names() -> list[str]:
    """Registered modality names, in registration order."""
    return list(_REGISTRY)


def create_modality(name: str, **settings: Any) -> Modality:
    """Instantiate a registered modality by name, saying which names exist when it is unknown."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; registered: {', '.join(_REGISTRY) or 'none'}") from None
    return cls(**settings)


class ReasonBook:
    """A modality's documented rejection codes, and the only way its code makes a :class:`Rejection`.

    ``reasons`` maps ``"<modality>.<reason>"`` to a plain-language explanation; asking for a reason
    not in it is a programming error raised at once, so every code a steward can meet is documented.
    """

    def __init__(self, modality: str, reasons: dict[str, str]) -> None:
        self.modality = modality
        self.reasons = reasons

    def __call__(self, reason: str, where: str, message: str, hint: str = "") -> Rejection:
        code = f"{self.modality}.{reason}"
        if code not in self.reasons:
            raise KeyError(f"undocumented rejection code {code!r}; document it in {self.modality}'s REASONS")
        return Rejection(code, where, message, hint)
