"""Writes a site's genomics/ table: one row per sample, log-expression of the federation's genes.

Expression is N(mu_g, 1) around a baseline shared by all sites, the 16 signature genes move with the
latent genomics signal (the first half up, the second half down), and each site measures through its
own batch effect (a per-gene offset and scale), the shift that federated harmonisation meets in
practice. The messy site also drops panel genes, loses some values, duplicates a sample and carries
a patient-name column a careless export left in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.population import Patient
from polyclinic.synth.profiles import SiteProfile

SIGNATURE_LOADING = 0.6
"""Shift of each signature gene per unit of the genomics signal, in units of its noise sd (1)."""
SIGNATURE_UP = vocab.SIGNATURE_GENES[: len(vocab.SIGNATURE_GENES) // 2]
SIGNATURE_DOWN = vocab.SIGNATURE_GENES[len(vocab.SIGNATURE_GENES) // 2 :]
MISSING_GENES = 3
NAN_CELLS = 6
DECIMALS = 4


def baseline_expression(rng: np.random.Generator) -> np.ndarray:
    """mu_g for every gene in vocabulary.GENES: biology, shared by all sites (a federation stream), near the
    public reference profile but not equal to it."""
    reference = np.array(vocab.reference_expression())
    return reference + rng.normal(0.0, vocab.REFERENCE_ERROR_SD, size=len(reference))


def expression(
    patients: list[Patient], mu: np.ndarray, batch_sd: float, rng: np.random.Generator
) -> np.ndarray:
    """Samples x genes log-expression with the signature shift and the site's batch effect."""
    direction = np.array(
        [1.0 if g in SIGNATURE_UP else -1.0 if g in SIGNATURE_DOWN else 0.0 for g in vocab.GENES]
    )
    signal = np.array([p.signals["genomics"] for p in patients])
    deviation = rng.normal(size=(len(patients), len(mu))) + SIGNATURE_LOADING * np.outer(signal, direction)
    offset = rng.normal(0.0, batch_sd, size=len(mu))
    scale = np.exp(rng.normal(0.0, batch_sd / 3, size=len(mu)))
    return mu + offset + scale * deviation


def _messy(
    table: pd.DataFrame, patients: list[Patient], rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The messy site's export of ``table``, and what was done to it for the ground truth."""
    panel_rest = [g for g in vocab.GENE_PANEL if g not in vocab.SIGNATURE_GENES]
    missing = sorted(
        [
            str(rng.choice(vocab.SIGNATURE_GENES)),
            *map(str, rng.choice(panel_rest, size=MISSING_GENES - 1, replace=False)),
        ]
    )
    table = table.drop(columns=missing).copy()  # drop leaves one block per column; copy consolidates
    kept_panel = [g for g in vocab.GENE_PANEL if g not in missing]
    cells = rng.choice(len(table) * len(kept_panel), size=min(NAN_CELLS, len(table)), replace=False)
    nan_cells = [
        [str(table["sample_id"].iloc[cell // len(kept_panel)]), kept_panel[cell % len(kept_panel)]]
        for cell in map(int, cells)
    ]
    for cell in map(int, cells):
        table.iloc[cell // len(kept_panel), table.columns.get_loc(kept_panel[cell % len(kept_panel)])] = (
            np.nan
        )
    names = {p.identity.mrn: f"{p.identity.family}, {p.identity.given}" for p in patients}
    table.insert(0, "patient_name", table[vocab.GENOMICS_PATIENT_COLUMN].map(names))
    duplicated = None
    if len(table):
        dup = int(rng.integers(len(table)))
        duplicated = str(table["sample_id"].iloc[dup])
        table = pd.concat([table.iloc[: dup + 1], table.iloc[dup : dup + 1], table.iloc[dup + 1 :]])
    shuffled = [str(g) for g in rng.permutation([c for c in table.columns if c in vocab.GENES])]
    middle = len(shuffled) // 2
    order = [
        "patient_name",
        *shuffled[:middle],
        vocab.GENOMICS_PATIENT_COLUMN,
        *shuffled[middle:],
        "sample_id",
    ]
    return table[order], {
        "missing_genes": missing,
        "nan_cells": nan_cells,
        "duplicated_sample": duplicated,
        "extra_columns": ["patient_name"],
    }


def write_genomics(
    root: Path, patients: list[Patient], profile: SiteProfile, mu: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, str], dict[str, Any]]:
    """Write ``root`` (``SITE/genomics``); returns sample ids by MRN and the ground-truth description."""
    sampled = [p for p in patients if p.has_genomics]
    order = rng.permutation(len(sampled))
    sampled = [sampled[i] for i in order]
    sample_ids = {p.identity.mrn: f"S-{rng.bytes(4).hex().upper()}" for p in sampled}
    values = np.round(expression(sampled, mu, profile.batch_sd, rng), DECIMALS)
    table = pd.DataFrame(values, columns=list(vocab.GENES))
    table.insert(0, vocab.GENOMICS_PATIENT_COLUMN, [p.identity.mrn for p in sampled])
    table.insert(0, "sample_id", [sample_ids[p.identity.mrn] for p in sampled])
    quirks: dict[str, Any] = {
        "missing_genes": [],
        "nan_cells": [],
        "duplicated_sample": None,
        "extra_columns": [],
    }
    if profile.genomics_quirks:
        table, quirks = _messy(table, sampled, rng)
    root.mkdir(parents=True, exist_ok=True)
    name = f"expression.{profile.genomics}"
    table.to_csv(
        root / name,
        sep="\t" if profile.genomics == "tsv" else ",",
        index=False,
        float_format=f"%.{DECIMALS}f",
        na_rep="NA" if profile.genomics_quirks else "",
        lineterminator="\n",
    )
    truth = {
        "file": f"{root.name}/{name}",
        "format": profile.genomics,
        "rows": len(table),
        "signature_up": list(SIGNATURE_UP),
        "signature_down": list(SIGNATURE_DOWN),
        **quirks,
    }
    return sample_ids, truth
