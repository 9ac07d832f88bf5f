"""The genomics de-identifier: a messy hospital table in, only panel values (and a keyed table ref) out."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import numpy as np
import pytest

import privacy.genomics_deid  # noqa: F401  (registers the "genomics" de-identifier)
from modalities.genomics import GenomicsModality, GenomicsSample, GenomicsSettings
from privacy.deidentify import DeidContext, deidentify
from privacy.pseudonym import Pseudonymiser

PANEL = ("EGFR", "KRAS", "TP53")
SECRETS = ("Margaret", "Hamilton", "1936-08-17", "Paoli", "Indiana", "MRN-004711", "555-0199", "hamilton")


def context(secret: bytes = b"k" * 32) -> DeidContext:
    pseudonymiser = Pseudonymiser(secret)
    return DeidContext(pseudonymiser, pseudonymiser.patient("MRN-004711"), dt.date(2025, 1, 1))


@pytest.fixture
def messy_site(tmp_path: Path) -> Path:
    """A table as hospitals keep them: names, birth dates, addresses and phone numbers beside the genes."""
    folder = tmp_path / "site" / "genomics" / "hamilton"
    folder.mkdir(parents=True)
    (folder / "Margaret_Hamilton_1936-08-17.csv").write_text(
        "Name,patient_id,DOB,egfr,Address,KRAS,Phone,Comment,TP53\n"
        "Margaret Hamilton,MRN-004711,1936-08-17,2.5,\"1 Main St, Paoli, Indiana\",NA,555-0199,"
        "Margaret says hi,-1.25\n")
    return tmp_path / "site" / "genomics"


def deidentified(root: Path) -> GenomicsSample:
    modality = GenomicsModality(GenomicsSettings(gene_panel=PANEL))
    (item,) = modality.discover(root).items
    return deidentify("genomics", modality.read(item), context())


def test_only_panel_values_survive_a_messy_table(messy_site: Path) -> None:
    clean = deidentified(messy_site)
    np.testing.assert_array_equal(clean.values, np.array([2.5, np.nan, -1.25], np.float32))
    blob = pickle.dumps(clean)
    for secret in SECRETS:
        assert secret.encode() not in blob, secret
        assert secret not in repr(clean.__dict__)


def test_table_name_becomes_a_stable_keyed_reference(messy_site: Path) -> None:
    clean = deidentified(messy_site)
    assert clean.table == context().pseudonymiser.reference("hamilton/Margaret_Hamilton_1936-08-17.csv")
    assert clean.table != context(b"other-site-secret").pseudonymiser.reference(
        "hamilton/Margaret_Hamilton_1936-08-17.csv")


def test_output_is_a_fresh_float32_copy() -> None:
    sample = GenomicsSample(np.array([1, 2, np.nan], np.float32), "t.csv", non_finite=1)
    clean = deidentify("genomics", sample, context())
    assert clean.values.dtype == np.float32 and clean.non_finite == 1
    clean.values[0] = 99
    assert sample.values[0] == 1


def test_refuses_anything_but_a_genomics_sample() -> None:
    with pytest.raises(TypeError, match="GenomicsSample"):
        deidentify("genomics", {"values": [1.0], "name": "Margaret Hamilton"}, context())
