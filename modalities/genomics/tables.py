"""Reading a genomic table whatever shape the hospital exported it in.

Tables come out of Excel, R and lab systems: comma, tab, semicolon or pipe separated, sometimes
gzip-compressed, sometimes Parquet, in UTF-8, UTF-16 (Excel's "Unicode text") or Windows-1252. The
delimiter is sniffed from the header, not trusted to the extension (``.txt`` is usually tab-separated,
European ``.csv`` often uses semicolons): the delimiter that yields the patient column wins, else the
one that splits the header into the most columns, else the extension's. Every cell of a text table is
read as text and the patient column of a Parquet table is cast to text, so an identifier ``00123``
keeps its zeros and ``123`` never becomes ``123.0``; numbers are parsed later, where bad cells can be
counted (:mod:`modalities.genomics.align`).

Errors never quote the file's content (it may hold patient names); a malformed line is reported by
its line number only.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modalities.genomics.align import ColumnNames

_TEXT_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_PARQUET = (".parquet", ".pq")
_DELIMITERS = (",", "\t", ";", "|")
_PROBE_CHARS = 1 << 16
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r", "\f"}
_BAD_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
SUPPORTED = ".csv, .tsv, .txt (each optionally .gz), .parquet, .pq"


class TableError(Exception):
    """A file that cannot be used as a table; ``reason`` is its REASONS code without the prefix."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Table:
    """A table's cells (text tables: all text) and the position of its patient column, if any."""

    frame: pd.DataFrame
    patient_position: int | None
    delimiter: str | None
    """The sniffed delimiter of a text table (None for Parquet); a semicolon implies decimal commas."""


def read_table(path: Path, *, patient_column: str) -> Table:
    """Parse ``path``; raises :class:`TableError` for what is not a table, ``OSError`` when unreadable."""
    name = path.name.lower()
    if name.endswith(_PARQUET):
        return _read_parquet(path, patient_column)
    default = _text_delimiter(name)
    if default is None:
        raise TableError("not-a-table", f"unknown extension; genomic tables are {SUPPORTED}")
    return _read_text(path, default, name.endswith(".gz"), patient_column)


def _text_delimiter(name: str) -> str | None:
    stem = name.removesuffix(".gz")
    return next((d for suffix, d in _TEXT_DELIMITERS.items() if stem.endswith(suffix)), None)


def _read_text(path: Path, default: str, compressed: bool, patient_column: str) -> Table:
    text = _decode(_read_bytes(path, compressed))
    if not text.strip():
        raise TableError("empty-table", "the file is empty")
    probe = text[:_PROBE_CHARS]
    if sum(ch in _CONTROL for ch in probe) > len(probe) // 100:
        raise TableError("not-a-table", "binary content, not a text table; export the table as CSV or TSV")
    delimiter = _sniff(text, default, patient_column)
    try:
        cells = _cells(text, delimiter)
    except pd.errors.EmptyDataError:
        raise TableError("empty-table", "the file has no header and no rows") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise TableError("not-a-table", _parse_problem(exc)) from None
    frame = cells.iloc[1:].reset_index(drop=True).fillna("")
    frame.columns = [str(c) for c in cells.iloc[0]]
    return Table(frame, ColumnNames(frame.columns).position(patient_column), delimiter)


def _cells(text: str, delimiter: str, rows: int | None = None) -> pd.DataFrame:
    """All lines as text cells, the header included: pandas' own header handling would guess an index
    column, or drop cells, when a line has more fields than the header; here that line is an error."""
    return pd.read_csv(io.StringIO(text), sep=delimiter, header=None, nrows=rows, dtype=str, na_filter=False)


def _read_bytes(path: Path, compressed: bool) -> bytes:
    if not compressed:
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise TableError("not-a-table", "named .gz but not a complete gzip file; re-compress it") from None


def _decode(raw: bytes) -> str:
    """UTF-16 when it says so (a byte-order mark), else UTF-8 (BOM dropped), else Windows-1252/Latin-1."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise TableError("not-a-table", "starts like UTF-16 text but does not decode as it") from None
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _sniff(text: str, default: str, patient_column: str) -> str:
    """The delimiter whose header holds the patient column, else the one giving the most columns."""
    head = _header_text(text)
    best: tuple[tuple[bool, int, bool], str] | None = None
    for delimiter in _DELIMITERS:
        try:
            header = _cells(head, delimiter, rows=1).iloc[0].tolist()
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, IndexError):
            continue
        found = ColumnNames(header).position(patient_column) is not None
        score = (found, len(header), delimiter == default)
        if best is None or score > best[0]:
            best = (score, delimiter)
    return best[1] if best else default


def _header_text(text: str) -> str:
    """The text up to the end of the header line (a newline outside quotes), so sniffing is cheap."""
    start = quotes = 0
    while (end := text.find("\n", start)) != -1:
        quotes += text.count('"', start, end)
        if quotes % 2 == 0:
            return text[: end + 1]
        start = end + 1
    return text


def _parse_problem(exc: Exception) -> str:
    match = _BAD_LINE.search(str(exc))
    if match:
        expected, line, saw = match.groups()
        return (f"line {line} has {saw} fields where the header has {expected}; quote cells that contain "
                "the delimiter, or fix that line")
    return "cannot be parsed as a delimited table (unbalanced quotes or a malformed line)"


def _read_parquet(path: Path, patient_column: str) -> Table:
    with path.open("rb") as fh:  # open errors are the file system's (unreadable); the rest is content
        if not fh.read(1):
            raise TableError("empty-table", "the file is empty")
        fh.seek(0)
        try:
            arrow = pq.read_table(fh)
        except (pa.ArrowException, OSError, ValueError):
            raise TableError("not-a-table", "not a readable Parquet file (truncated or corrupt); "
                                            "re-export it") from None
    names = [str(n) for n in arrow.column_names]
    position = ColumnNames(names).position(patient_column)
    columns = {i: (_as_text(arrow.column(i)) if i == position else arrow.column(i).to_pandas())
               for i in range(len(names))}
    frame = pd.DataFrame(columns)
    frame.columns = names
    return Table(frame, position, None)


def _as_text(column: pa.ChunkedArray) -> pd.Series:
    """Identifiers as text: ``123`` (int or float 123.0) -> ``"123"``, nulls stay missing."""
    try:
        values = pc.cast(column, pa.string()).to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        values = [None if v is None else str(v) for v in column.to_pylist()]
    return pd.Series(values, dtype="string")
