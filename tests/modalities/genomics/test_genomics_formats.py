"""Genomic tables in every format hospitals export, and files that are not tables at all."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modalities.base import Discovery, create_modality, modality_names
from modalities.genomics import GenomicsModality, GenomicsSettings
from modalities.genomics.reasons import REASONS

PANEL = ("G1", "G2", "G3")


def discover(folder: Path, **settings) -> Discovery:
    return GenomicsModality(GenomicsSettings(gene_panel=PANEL, **settings)).discover(folder)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "site" / "genomics"
    path.mkdir(parents=True)
    return path


def by_patient(disc: Discovery) -> dict[str, np.ndarray]:
    return {item.patient_id: item.payload.values for item in disc.items}


def codes(disc: Discovery) -> list[str]:
    return [r.code for r in disc.rejections]


def test_registered_under_its_name() -> None:
    assert "genomics" in modality_names()
    modality = create_modality("genomics", settings=GenomicsSettings(gene_panel=PANEL))
    assert isinstance(modality, GenomicsModality)
    assert (modality.name, modality.folder) == ("genomics", "genomics")


def test_csv_rows_become_items_aligned_to_the_panel(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1,G2,G3\nA,1.5,2,3\nB,4,5,6\n")
    disc = discover(folder)
    assert codes(disc) == [] and disc.found == 2
    values = by_patient(disc)
    np.testing.assert_array_equal(values["A"], np.array([1.5, 2, 3], np.float32))
    assert values["B"].dtype == np.float32
    assert [i.where for i in disc.items] == ["genomics/expr.csv#row=1", "genomics/expr.csv#row=2"]


def test_tsv_with_reordered_columns_is_aligned_by_name(folder: Path) -> None:
    (folder / "expr.tsv").write_text("G3\tG1\tpatient_id\tG2\n3\t1\tA\t2\n")
    np.testing.assert_array_equal(by_patient(discover(folder))["A"], [1, 2, 3])


def test_txt_delimiter_is_sniffed_not_assumed(folder: Path) -> None:
    (folder / "tab.txt").write_text("patient_id\tG1\tG2\tG3\nA\t1\t2\t3\n")
    (folder / "comma.txt").write_text("patient_id,G1,G2,G3\nB,4,5,6\n")
    values = by_patient(discover(folder))
    np.testing.assert_array_equal(values["A"], [1, 2, 3])
    np.testing.assert_array_equal(values["B"], [4, 5, 6])


def test_semicolon_csv_reads_decimal_commas(folder: Path) -> None:
    (folder / "excel-de.csv").write_text("patient_id;G1;G2;G3\nA;1,5;2;-0,25\n")
    np.testing.assert_array_equal(by_patient(discover(folder))["A"], [1.5, 2, -0.25])


def test_gzip_compressed_csv_and_tsv(folder: Path) -> None:
    (folder / "a.csv.gz").write_bytes(gzip.compress(b"patient_id,G1,G2,G3\nA,1,2,3\n"))
    (folder / "b.tsv.gz").write_bytes(gzip.compress(b"patient_id\tG1\tG2\tG3\nB,x\t4\t5\t6\n"))
    values = by_patient(discover(folder))
    np.testing.assert_array_equal(values["A"], [1, 2, 3])
    np.testing.assert_array_equal(values["B,x"], [4, 5, 6])


def test_parquet_with_integer_ids_and_nulls(folder: Path) -> None:
    frame = pd.DataFrame({"G2": [2.0, None], "patient_id": [123, 124], "G1": [1.0, 7.0]})
    frame.to_parquet(folder / "expr.parquet")
    disc = discover(folder)
    values = by_patient(disc)
    assert sorted(values) == ["123", "124"]
    np.testing.assert_array_equal(values["124"], [7, np.nan, np.nan])
    assert disc.items[0].payload.table == "expr.parquet"


def test_parquet_float_ids_do_not_gain_a_decimal(folder: Path) -> None:
    pd.DataFrame({"patient_id": [123.0, None], "G1": [1.0, 2.0]}).to_parquet(folder / "f.parquet")
    disc = discover(folder)
    assert [i.patient_id for i in disc.items] == ["123"]
    assert codes(disc) == ["genomics.no-patient-id"]


def test_utf16_and_windows_encodings_with_bom(folder: Path) -> None:
    (folder / "u16.txt").write_bytes("patient_id\tG1\nÉlodie\t1\n".encode("utf-16"))
    (folder / "cp.csv").write_bytes("patient_id,G1\nJosé,2\n".encode("cp1252"))
    (folder / "bom.csv").write_bytes("patient_id,G1\nZoë,3\n".encode("utf-8-sig"))
    assert sorted(by_patient(discover(folder))) == ["José", "Zoë", "Élodie"]


def test_files_in_subfolders_are_found_with_their_path(folder: Path) -> None:
    (folder / "batch1").mkdir()
    (folder / "batch1" / "expr.csv").write_text("patient_id,G1\nA,1\n")
    item = discover(folder).items[0]
    assert item.where == "genomics/batch1/expr.csv#row=1"
    assert item.payload.table == "batch1/expr.csv"


def test_fingerprint_is_the_files_and_changes_with_it(folder: Path) -> None:
    table = folder / "expr.csv"
    table.write_text("patient_id,G1\nA,1\nB,2\n")
    first = discover(folder)
    assert first.items[0].fingerprint == first.items[1].fingerprint
    table.write_text("patient_id,G1\nA,1\nB,3\n")
    assert discover(folder).items[0].fingerprint != first.items[0].fingerprint


def test_empty_folder_and_missing_folder(folder: Path) -> None:
    for root in (folder, folder / "absent"):
        disc = discover(root)
        assert (disc.found, disc.items, disc.rejections) == (0, [], [])


@pytest.mark.parametrize("content", [b"", b"   \n\n", b"patient_id,G1,G2\n"])
def test_empty_files_are_empty_tables(folder: Path, content: bytes) -> None:
    (folder / "empty.csv").write_bytes(content)
    disc = discover(folder)
    assert codes(disc) == ["genomics.empty-table"] and disc.found == 1


def test_empty_parquet_and_empty_gzip(folder: Path) -> None:
    (folder / "empty.parquet").write_bytes(b"")
    (folder / "empty.csv.gz").write_bytes(gzip.compress(b""))
    pd.DataFrame({"patient_id": pd.Series([], dtype=str), "G1": []}).to_parquet(folder / "rows.parquet")
    assert codes(discover(folder)) == ["genomics.empty-table"] * 3


def test_binary_garbage_named_csv_is_not_a_table(folder: Path) -> None:
    rng = np.random.default_rng(0)
    (folder / "garbage.csv").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "fake.csv.gz").write_bytes(b"not gzip at all")
    (folder / "fake.parquet").write_bytes(b"PAR1 certainly not parquet PAR1")
    disc = discover(folder)
    assert codes(disc) == ["genomics.not-a-table"] * 3
    assert disc.found == 3 and disc.items == []


def test_unknown_extension_is_not_a_table_and_says_what_is(folder: Path) -> None:
    (folder / "notes.docx").write_bytes(b"PK\x03\x04")
    (rejection,) = discover(folder).rejections
    assert rejection.code == "genomics.not-a-table"
    assert ".parquet" in rejection.message and ".tsv" in rejection.message


def test_malformed_line_is_reported_by_line_number_without_content(folder: Path) -> None:
    (folder / "bad.csv").write_text("patient_id,G1\nA,1\nSmith, John,2\n")
    (rejection,) = discover(folder).rejections
    assert rejection.code == "genomics.not-a-table"
    assert "line 3" in rejection.message and "Smith" not in rejection.message


def test_hidden_files_are_ignored(folder: Path) -> None:
    (folder / ".~lock.expr.csv#").write_text("garbage")
    (folder / ".DS_Store").write_bytes(b"\x00\x00")
    assert discover(folder).found == 0


def test_symlink_loop_is_a_counted_rejection(folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "sub" / "expr.csv").write_text("patient_id,G1\nA,1\n")
    disc = discover(folder)
    assert codes(disc) == ["genomics.symlink-loop"]
    assert [i.patient_id for i in disc.items] == ["A"]
    assert disc.found == len(disc.items) + len(disc.rejections)


def test_every_code_used_is_documented(folder: Path) -> None:
    (folder / "a.csv").write_text("patient_id,G1\n,1\nA,\nA,1\nA,2\n")
    (folder / "b.csv").write_text("mrn,G1\n1,1\n")
    (folder / "c.csv").write_text("patient_id,X\n1,1\n")
    (folder / "d.bin").write_bytes(b"\x00")
    used = set(codes(discover(folder)))
    assert used == {"genomics.no-patient-id", "genomics.empty-row", "genomics.duplicate-sample",
                    "genomics.no-patient-column", "genomics.no-panel-genes", "genomics.not-a-table"}
    assert used <= set(REASONS)


@pytest.mark.parametrize("lines", ["A,1,2\n", "A,1\nB,2,\n", "A,1,\n"])
def test_a_line_longer_than_the_header_is_never_silently_cut(folder: Path, lines: str) -> None:
    (folder / "shifted.csv").write_text("patient_id,G1\n" + lines)
    disc = discover(folder)
    assert [r.code for r in disc.rejections] == ["genomics.not-a-table"] and disc.items == []
    assert "fields where the header has 2" in disc.rejections[0].message


def test_short_lines_and_quoted_newlines(folder: Path) -> None:
    (folder / "expr.csv").write_text('patient_id,"G1",notes,G2\nA,1\nB,2,"line one\nline two",3\n')
    values = by_patient(discover(folder))
    np.testing.assert_array_equal(values["A"], [1, np.nan, np.nan])
    np.testing.assert_array_equal(values["B"], [2, 3, np.nan])


def test_dangling_link_is_unreadable_and_counted(folder: Path) -> None:
    (folder / "gone.csv").symlink_to(folder / "nowhere.csv")
    disc = discover(folder)
    assert codes(disc) == ["genomics.unreadable"] and disc.found == 1


def test_unbalanced_quote_in_a_long_file_is_rejected_quickly(folder: Path) -> None:
    (folder / "quote.csv").write_text('patient_id,"G1\n' + "A,1\n" * 50_000)
    (rejection,) = discover(folder).rejections
    assert rejection.code == "genomics.no-patient-column"  # no delimiter yields a patient column
    assert "found 1: 'patient_id,\"G1'" in rejection.message
