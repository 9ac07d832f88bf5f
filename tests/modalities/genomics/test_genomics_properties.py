"""Property-based checks: whatever a table holds, discovery never crashes and every row is accounted for."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modalities.base import Discovery
from modalities.genomics import GenomicsModality, GenomicsSettings

PANEL = ("G1", "G2", "TP53", "KRAS")
FORMATS = ("csv", "semicolon.csv", "tsv", "csv.gz", "parquet")
PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Any printable text plus the characters that break naive parsers; control characters are excluded
# because a table full of them is (rightly) rejected as binary, which is tested separately.
cell_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(",;\t\n\r\"' "),
                    max_size=12)
id_cells = st.sampled_from(["A", "B", " A ", "001", "1", "1.0", "NA", "", "  ", "None"]) | cell_text
gene_cells = (st.floats(allow_nan=True, allow_infinity=True).map(repr)
              | st.sampled_from(["", "NA", "nan", "inf", "-inf", "1e999", "1,5", "x", " 2 ", "1e-40"])
              | cell_text)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], int]:
    """(header, rows, position of the patient column) with panel genes in random case and order."""
    genes = draw(st.lists(st.sampled_from(PANEL), min_size=1, unique=True))
    header = ["patient_id", *(draw(st.sampled_from([g, g.lower()])) for g in genes)]
    header += draw(st.lists(st.sampled_from(["name", "dob", "notes"]), unique=True))
    header = draw(st.permutations(header))
    rows = draw(st.lists(st.tuples(*(id_cells if h == "patient_id" else gene_cells for h in header)),
                         max_size=8))
    return header, [list(r) for r in rows], header.index("patient_id")


def write(folder: Path, fmt: str, header: list[str], rows: list[list[str]]) -> None:
    path = folder / f"table.{fmt}"
    if fmt == "parquet":
        pd.DataFrame(rows, columns=header, dtype="string").to_parquet(path)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter={"tsv": "\t", "semicolon.csv": ";"}.get(fmt, ","))
    writer.writerows([header, *rows])
    data = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(data) if fmt.endswith(".gz") else data)


def discover(folder: Path) -> Discovery:
    return GenomicsModality(GenomicsSettings(gene_panel=PANEL)).discover(folder)


def check_accounting(disc: Discovery) -> None:
    assert disc.found == len(disc.items) + len(disc.rejections)
    assert len({i.patient_id for i in disc.items}) == len(disc.items)
    for item in disc.items:
        values = item.payload.values
        assert values.dtype == np.float32 and values.shape == (len(PANEL),)
        assert not np.isinf(values).any() and not np.isnan(values).all()
        assert item.patient_id == item.patient_id.strip() != ""


@PROPERTY
@given(table=tables(), fmt=st.sampled_from(FORMATS))
def test_every_row_is_an_item_or_a_row_rejection(table: tuple[list[str], list[list[str]], int],
                                                 fmt: str) -> None:
    header, rows, id_position = table
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "genomics"
        folder.mkdir()
        write(folder, fmt, header, rows)
        disc = discover(folder)
    check_accounting(disc)
    if not rows:
        assert [r.code for r in disc.rejections] == ["genomics.empty-table"]
        return
    row_of = {int(where.rpartition("#row=")[2]): where
              for where in [i.where for i in disc.items] + [r.where for r in disc.rejections]}
    assert sorted(row_of) == list(range(1, len(rows) + 1)), "every row exactly once"
    assert disc.found == len(rows)
    for item in disc.items:
        row = int(item.where.rpartition("#row=")[2])
        assert item.patient_id == rows[row - 1][id_position].strip()


@PROPERTY
@given(data=st.binary(max_size=2048), name=st.sampled_from(["x.csv", "x.tsv.gz", "x.txt", "x.parquet"]))
def test_arbitrary_bytes_never_crash(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "genomics"
        folder.mkdir()
        (folder / name).write_bytes(data)
        disc = discover(folder)
    check_accounting(disc)


@PROPERTY
@given(fmt=st.sampled_from(["parquet", "csv.gz"]), cut=st.integers(0, 10_000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4))
def test_damaged_compressed_files_never_crash(fmt: str, cut: int, flips: list[tuple[int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "genomics"
        folder.mkdir()
        write(folder, fmt, ["patient_id", "G1", "KRAS"], [["A", "1", "2"], ["B", "x", "3"]])
        path = folder / f"table.{fmt}"
        data = bytearray(path.read_bytes())
        for position, mask in flips:
            data[position % len(data)] ^= mask
        path.write_bytes(bytes(data[: cut % (len(data) + 1)]))
        disc = discover(folder)
    check_accounting(disc)
