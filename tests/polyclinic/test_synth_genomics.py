"""The synthetic expression tables load with pandas and have exactly the documented quirks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyclinic.synth import GroundTruth, generate
from polyclinic.synth import vocabulary as vocab

ID = vocab.GENOMICS_PATIENT_COLUMN


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    out = tmp_path_factory.mktemp("synth-genomics")
    return out, generate(out, sites=3, patients=40, seed=7)


def test_clean_site_has_one_row_per_sampled_patient_and_every_gene(federation):
    out, truth = federation
    site = truth.site("hospital-a")
    table = pd.read_csv(out / site.id / site.genomics["file"])
    assert list(table.columns) == ["sample_id", ID, *vocab.GENES]
    assert not table.isna().any().any() and table["sample_id"].is_unique
    assert table["sample_id"].str.match(r"^S-[0-9A-F]{8}$").all()
    sampled = {p.mrn: p.sample_id for p in site.patients if p.sample_id}
    assert dict(zip(table[ID], table["sample_id"], strict=True)) == sampled
    assert 0.7 < len(sampled) / len(site.patients) < 1.0
    assert table[list(vocab.GENES)].dtypes.eq(np.float64).all()


def test_messy_site_has_the_documented_quirks(federation):
    out, truth = federation
    site = truth.site("hospital-b")
    quirks = site.genomics
    table = pd.read_csv(out / site.id / quirks["file"], sep="\t")
    columns = list(table.columns)
    assert columns[0] == "patient_name" and columns[-1] == "sample_id" and ID in columns[2:-2]
    genes = [c for c in columns if c in vocab.GENES]
    assert genes != sorted(genes), "gene columns are reordered"
    missing = quirks["missing_genes"]
    assert (
        len(missing) == 3
        and set(missing) <= set(vocab.GENE_PANEL)
        and set(missing) & set(vocab.SIGNATURE_GENES)
    )
    assert sorted(genes + missing) == list(vocab.GENES)
    assert len(table) == quirks["rows"] == sum(bool(p.sample_id) for p in site.patients) + 1
    duplicated = table[table["sample_id"].duplicated(keep=False)]
    assert list(duplicated["sample_id"]) == [quirks["duplicated_sample"]] * 2
    assert duplicated.iloc[0].equals(duplicated.iloc[1])
    unique = table.drop_duplicates("sample_id").set_index("sample_id")
    assert int(unique[genes].isna().sum().sum()) == len(quirks["nan_cells"]) == 6
    assert all(np.isnan(unique.loc[sample, gene]) for sample, gene in quirks["nan_cells"])
    names = {p.mrn: f"{p.family}, {p.given}" for p in site.patients}
    assert (unique["patient_name"] == unique[ID].map(names)).all()


def test_site_c_has_no_genomics(federation):
    out, truth = federation
    assert not (out / "hospital-c" / "genomics").exists()
    assert truth.site("hospital-c").genomics is None
    assert not any(p.sample_id for p in truth.site("hospital-c").patients)


def test_sites_measure_through_different_batch_effects(federation):
    out, truth = federation
    a = pd.read_csv(out / "hospital-a" / truth.site("hospital-a").genomics["file"])
    b = pd.read_csv(out / "hospital-b" / truth.site("hospital-b").genomics["file"], sep="\t")
    quiet = [g for g in vocab.GENES[len(vocab.GENE_PANEL) :]]  # carry no signal and are never missing
    shift = (a[quiet].mean() - b[quiet].mean()).abs()
    assert 0.2 < shift.mean() < 1.0, "per-gene batch offsets of a few tenths of a log unit"
    assert a[quiet].std().mean() == pytest.approx(1.0, abs=0.25)
