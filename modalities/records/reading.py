"""From files to raw FHIR resource objects: Bundle JSON, single-resource JSON and NDJSON bulk exports
(plain ``*.ndjson`` or gzipped ``*.ndjson.gz``, as Bulk Data servers may serve them).

Nothing here validates resources (that needs the release, see :mod:`releases`); it only finds the
JSON objects that claim to be resources and turns everything else into a counted rejection, so that
every resource, line and file found is either passed on or accounted for.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modalities.base import Rejection
from modalities.files import relative
from modalities.records.reasons import reject
from modalities.records.releases import is_resource_type

JSON_SUFFIXES = (".json",)
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz")
GZIP_SUFFIX = ".gz"
"""FHIR Bulk Data servers may gzip their NDJSON files; ``*.ndjson.gz`` is read as NDJSON."""
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_FIX_JSON = "export the records again, or fix the JSON syntax; each NDJSON line must be one complete object"


@dataclass(frozen=True)
class RawResource:
    """One JSON object with a known ``resourceType``, where it was found and its Bundle ``fullUrl``."""

    data: dict[str, Any]
    where: str
    full_url: str | None = None

    @property
    def type(self) -> str:
        return self.data["resourceType"]


@dataclass
class FileContent:
    """What one file holds: one entry per resource or line found, either a resource or a rejection."""

    resources: list[RawResource] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def found(self) -> int:
        return len(self.resources) + len(self.rejections)


def locate(rel: str, data: dict[str, Any], fallback: str = "") -> str:
    """``path#Type/id`` when the id is a valid FHIR id, else ``path`` plus the line or entry fragment."""
    rid = data.get("id")
    if isinstance(rid, str) and _FHIR_ID.match(rid):
        return f"{rel}#{data['resourceType']}/{rid}"
    return f"{rel}{fallback}"


def _suffix(path: Path) -> str:
    """``.json``, ``.ndjson`` or ``.ndjson.gz`` (any case), else the last suffix."""
    name = path.name.lower()
    return next((s for s in (*NDJSON_SUFFIXES, *JSON_SUFFIXES) if name.endswith(s)), path.suffix.lower())


def read_records_file(path: Path, site_root: Path) -> FileContent:
    """Parse one file of the records folder into raw resources and rejections."""
    rel = relative(path, site_root)
    content = FileContent()
    suffix = _suffix(path)
    if suffix not in JSON_SUFFIXES + NDJSON_SUFFIXES:
        content.rejections.append(
            reject(
                "unsupported-format",
                rel,
                f"files ending in {suffix or '(no suffix)'} are not read",
                "export FHIR as JSON (a Bundle or one resource per file) or NDJSON bulk data "
                "(optionally gzipped, *.ndjson.gz); FHIR XML is not read",
            )
        )
        return content
    try:
        data = path.read_bytes()
        if suffix.endswith(GZIP_SUFFIX):
            data = gzip.decompress(data)
        text = data.decode("utf-8-sig")
    except OSError as exc:
        if isinstance(exc, gzip.BadGzipFile):
            content.rejections.append(_bad_gzip(rel))
            return content
        content.rejections.append(
            reject(
                "unreadable",
                rel,
                f"cannot be read ({exc.strerror or type(exc).__name__})",
                "check the file permissions for the user running the client",
            )
        )
        return content
    except (EOFError, zlib.error):
        content.rejections.append(_bad_gzip(rel))
        return content
    except UnicodeDecodeError:
        content.rejections.append(reject("invalid-json", rel, "not UTF-8 text", "FHIR JSON must be UTF-8"))
        return content
    if suffix in NDJSON_SUFFIXES:
        _read_ndjson(text, rel, content)
    else:
        _read_json(text, rel, content)
    if not content.found:
        content.rejections.append(
            reject("empty-file", rel, "holds no resources", "remove the file or export the records again")
        )
    return content


def _bad_gzip(rel: str) -> Rejection:
    return reject(
        "invalid-gzip",
        rel,
        "is not a complete gzip stream (truncated or not gzip at all)",
        "copy the bulk export file again, or store it uncompressed as *.ndjson",
    )


def _loads(text: str) -> Any:
    """JSON as FHIR allows it: NaN and Infinity are not JSON numbers, however Python's parser feels."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON number")

    return json.loads(text, parse_constant=refuse)


def _read_json(text: str, rel: str, content: FileContent) -> None:
    if not text.strip():
        return
    try:
        data = _loads(text)
    except (ValueError, RecursionError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        content.rejections.append(reject("invalid-json", rel, f"not valid JSON{where}", _FIX_JSON))
        return
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        _read_bundle(data, rel, content)
    else:
        _add(data, rel, "", None, content)


def _read_ndjson(text: str, rel: str, content: FileContent) -> None:
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 is valid in JSON
        if not line.strip():
            continue
        try:
            data = _loads(line)
        except (ValueError, RecursionError):
            content.rejections.append(
                reject("invalid-json", f"{rel}#line={number}", "not valid JSON", _FIX_JSON)
            )
            continue
        _add(data, rel, f"#line={number}", None, content)


def _read_bundle(bundle: dict[str, Any], rel: str, content: FileContent) -> None:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        content.rejections.append(
            reject("not-fhir", locate(rel, bundle), "Bundle.entry is not a list", "export the Bundle again")
        )
        return
    for number, entry in enumerate(entries):
        if isinstance(entry, dict) and "resource" not in entry:
            continue  # a request or response without a resource (e.g. a DELETE in a transaction)
        resource = entry.get("resource") if isinstance(entry, dict) else entry
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        _add(resource, rel, f"#entry={number}", full_url if isinstance(full_url, str) else None, content)


def _add(data: Any, rel: str, fallback: str, full_url: str | None, content: FileContent) -> None:
    if not isinstance(data, dict):
        content.rejections.append(
            reject(
                "not-fhir",
                f"{rel}{fallback}",
                f"a JSON {type(data).__name__ if data is not None else 'null'} "
                "where a FHIR resource object was expected",
                "each resource must be a JSON object",
            )
        )
        return
    kind = data.get("resourceType")
    if not isinstance(kind, str) or not is_resource_type(kind):
        what = "has no resourceType" if kind is None else "has a resourceType that no FHIR release defines"
        content.rejections.append(
            reject(
                "not-fhir",
                f"{rel}{fallback}",
                f"a JSON object that {what}",
                "only FHIR R4, R4B or R5 resources are read from the records folder",
            )
        )
        return
    content.resources.append(RawResource(data, locate(rel, data, fallback), full_url))
