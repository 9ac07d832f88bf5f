"""Rows, identifiers and cells of genomic tables: what becomes a sample, what is rejected, what is noted."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from modalities.base import Discovery, Item
from modalities.genomics import GenomicsModality, GenomicsSample, GenomicsSettings

PANEL = ("G1", "G2", "G3")


def modality(**settings) -> GenomicsModality:
    return GenomicsModality(GenomicsSettings(gene_panel=settings.pop("gene_panel", PANEL), **settings))


def discover(folder: Path, **settings) -> Discovery:
    return modality(**settings).discover(folder)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "site" / "genomics"
    path.mkdir(parents=True)
    return path


def rejected(disc: Discovery) -> list[tuple[str, str]]:
    return [(r.code, r.where) for r in disc.rejections]


def values_of(disc: Discovery, patient: str) -> np.ndarray:
    (item,) = [i for i in disc.items if i.patient_id == patient]
    return item.payload.values


def test_missing_patient_column_lists_columns_and_the_setting(folder: Path) -> None:
    (folder / "expr.csv").write_text("MRN,G1,G2\n1,2,3\n")
    disc = discover(folder)
    (rejection,) = disc.rejections
    assert (rejection.code, rejection.where) == ("genomics.no-patient-column", "genomics/expr.csv")
    assert "'patient_id'" in rejection.message and "'MRN'" in rejection.message
    assert all(word in rejection.hint for word in ("patient-column", "[genomics]", "study.toml"))
    assert disc.found == 1


def test_configured_patient_column_is_used(folder: Path) -> None:
    (folder / "expr.csv").write_text("MRN,G1\n1,2\n")
    assert [i.patient_id for i in discover(folder, patient_column="mrn").items] == ["1"]


def test_transposed_table_does_not_echo_its_header(folder: Path) -> None:
    (folder / "wide.csv").write_text("gene,MRN-0042,MRN-0043\nG1,1,2\nG2,3,4\n")
    (rejection,) = discover(folder).rejections
    assert rejection.code == "genomics.no-patient-column"
    assert "transposed" in rejection.message and "MRN-0042" not in rejection.message


def test_ids_that_look_numeric_stay_as_written(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1\n00123,1\n123,2\n 77 ,3\n1e3,4\n")
    assert [i.patient_id for i in discover(folder).items] == ["00123", "123", "77", "1e3"]


@pytest.mark.parametrize("blank", ["", "   ", "NA", "null"])
def test_row_without_an_id_is_rejected_by_row(folder: Path, blank: str) -> None:
    (folder / "expr.csv").write_text(f"patient_id,G1\nA,1\n{blank},2\n")
    disc = discover(folder)
    assert rejected(disc) == [("genomics.no-patient-id", "genomics/expr.csv#row=2")]
    assert [i.patient_id for i in disc.items] == ["A"]


def test_duplicates_within_a_table_keep_the_first_row(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1\nMRN-7,1\nB,2\nMRN-7,3\nMRN-7,4\n")
    disc = discover(folder)
    assert values_of(disc, "MRN-7")[0] == 1
    assert rejected(disc) == [("genomics.duplicate-sample", "genomics/expr.csv#row=3"),
                              ("genomics.duplicate-sample", "genomics/expr.csv#row=4")]
    assert "row 1 of this table" in disc.rejections[0].message
    assert "MRN-7" not in disc.rejections[0].message + disc.rejections[0].hint


def test_duplicates_across_tables_keep_the_first_table(folder: Path) -> None:
    (folder / "a.csv").write_text("patient_id,G1\nA,1\n")
    (folder / "b.tsv").write_text("patient_id\tG1\nB\t5\nA\t2\n")
    disc = discover(folder)
    assert values_of(disc, "A")[0] == 1
    assert rejected(disc) == [("genomics.duplicate-sample", "genomics/b.tsv#row=2")]
    assert "earlier table" in disc.rejections[0].message


def test_a_rejected_first_row_does_not_claim_the_patient(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1,G2\nA,,NA\nA,5,\n")
    disc = discover(folder)
    assert rejected(disc) == [("genomics.empty-row", "genomics/expr.csv#row=1")]
    np.testing.assert_array_equal(values_of(disc, "A"), [5, np.nan, np.nan])


def test_missing_markers_and_bad_cells(folder: Path) -> None:
    (folder / "expr.csv").write_text(
        "patient_id,G1,G2,G3\nA,NaN,NA,\nB,inf,-Infinity,7\nC,high,1e999,2\nD, 4.5 ,n/a,-1\n")
    disc = discover(folder)
    assert rejected(disc) == [("genomics.empty-row", "genomics/expr.csv#row=1")]
    np.testing.assert_array_equal(values_of(disc, "B"), [np.nan, np.nan, 7])
    np.testing.assert_array_equal(values_of(disc, "C"), [np.nan, np.nan, 2])
    np.testing.assert_array_equal(values_of(disc, "D"), [4.5, np.nan, -1])
    assert disc.items[0].payload.non_finite == 2
    assert disc.skipped == {"genomics.non-numeric-gene": 1, "genomics.non-finite-value": 3}
    assert any("1 non-numeric cell(s)" in n and "G1" in n for n in disc.notes)
    assert any("3 infinite" in n for n in disc.notes)


def test_values_beyond_float32_become_missing(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1,G2\nA,1e300,2\n")
    disc = discover(folder)
    np.testing.assert_array_equal(values_of(disc, "A"), [np.nan, 2, np.nan])
    assert disc.items[0].payload.non_finite == 1


def test_a_gene_column_entirely_text_is_treated_as_absent(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1,G2\nA,low,1\nB,high,2\n")
    disc = discover(folder)
    assert np.isnan(values_of(disc, "A")[0]) and np.isnan(values_of(disc, "B")[0])
    assert any("G1 hold no number" in n for n in disc.notes)
    assert disc.skipped["genomics.non-numeric-gene"] == 2


def test_only_text_genes_leave_only_empty_rows(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1\nA,low\nB,high\n")
    disc = discover(folder)
    assert [code for code, _ in rejected(disc)] == ["genomics.empty-row"] * 2
    assert disc.found == 2


def test_table_sharing_no_gene_with_the_panel(folder: Path) -> None:
    (folder / "labs.csv").write_text("patient_id,CRP,LDH\nA,1,2\n")
    disc = discover(folder)
    assert rejected(disc) == [("genomics.no-panel-genes", "genomics/labs.csv")]
    assert "3-gene panel" in disc.rejections[0].message


def test_gene_names_are_stripped_then_exact_then_case_insensitive(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id, g1 ,G2,g2,tp53\nA,1,2,3,4\n")
    disc = discover(folder, gene_panel=("G1", "G2", "TP53", "KRAS"))
    np.testing.assert_array_equal(values_of(disc, "A"), [1, 2, 4, np.nan])
    assert "genomics/expr.csv: panel genes matched ignoring case: G1, TP53" in disc.notes
    assert "genomics/expr.csv: 1 of 4 panel genes absent: KRAS" in disc.notes
    assert "genomics/expr.csv: 1 column(s) outside the panel ignored" in disc.notes


def test_patient_column_name_is_matched_like_genes(folder: Path) -> None:
    (folder / "expr.csv").write_text(" Patient_ID ,G1\nA,1\n")
    assert [i.patient_id for i in discover(folder).items] == ["A"]


def test_identifying_columns_never_reach_the_payload(folder: Path) -> None:
    (folder / "expr.csv").write_text(
        "name,patient_id,date_of_birth,G1,address,G2\n"
        "Jane Roe,MRN-9,1961-04-13,1.25,12 Elm Street,2\n")
    disc = discover(folder)
    (item,) = disc.items
    blob = pickle.dumps(item.payload) + pickle.dumps(modality().read(item))
    for secret in (b"Jane", b"Roe", b"1961", b"Elm", b"MRN-9"):
        assert secret not in blob
    assert "3 column(s) outside the panel ignored" in disc.notes[-1]
    assert not any("Jane" in n or "date_of_birth" in n for n in disc.notes)


def test_read_returns_a_private_copy(folder: Path) -> None:
    (folder / "expr.csv").write_text("patient_id,G1,G2,G3\nA,1,,3\n")
    m = modality()
    (item,) = m.discover(folder).items
    sample = m.read(item)
    assert isinstance(sample, GenomicsSample) and sample.values.dtype == np.float32
    sample.values[:] = 0
    assert item.payload.values[0] == 1


def test_read_refuses_items_of_another_modality() -> None:
    with pytest.raises(TypeError, match="not discovered by the genomics modality"):
        modality().read(Item("imaging", "A", "imaging/x.dcm", "f", payload=["x.dcm"]))


def test_features_zero_missing_values_and_flag_them() -> None:
    sample = GenomicsSample(np.array([1.5, np.nan, -2], np.float32), "t.csv")
    feats = modality().features(sample)
    assert set(feats) == {"genome", "genome_missing"}
    np.testing.assert_array_equal(feats["genome"], [1.5, 0, -2])
    np.testing.assert_array_equal(feats["genome_missing"], [0, 1, 0])
    assert feats["genome"].dtype == feats["genome_missing"].dtype == np.float32
    assert not np.isnan(sample.values[0]) and np.isnan(sample.values[1])


def test_features_refuse_a_sample_of_another_panel() -> None:
    with pytest.raises(ValueError, match="gene-panel"):
        modality().features(GenomicsSample(np.zeros(5, np.float32), "t.csv"))


def test_found_equals_items_plus_rejections(folder: Path) -> None:
    (folder / "a.csv").write_text("patient_id,G1\nA,1\n,2\nA,3\nB,\n")
    (folder / "b.csv").write_text("x,y\n1,2\n")
    (folder / "c.csv").write_text("")
    disc = discover(folder)
    assert disc.found == 6 == len(disc.items) + len(disc.rejections)
