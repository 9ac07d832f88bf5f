"""How much of the label the model's own inputs carry, per set of modalities: the yardstick for utility.py.

A cross-validated L2 logistic regression (scikit-learn) is fitted on the features each encoder starts
from, on the same federations and splits as ``benchmarks/utility.py`` (3 sites x 200 patients, one
federation per seed, medians over seeds): the records vector, the gene panel read against the reference
profile and normalised per sample with its missing flags, and the imaging encoder's fixed blob detectors
max-pooled per grid cell.
Features of a modality a patient lacks are 0, and the presence masks are features too, exactly as the
fusion model sees them. Every patient of the validation splits is scored, whatever they lack, as in
utility.py. No DP, no neural network: a linear model on fixed features, so a figure here is what these
inputs allow a simple model, not a bound on every model.

Why it exists: ``worst_missing_over_best_single`` in utility.py asks the fusion, with the best modality
hidden, to match that modality alone. ``others_over_best`` here (the two weaker modalities together /
the best one alone) says whether the inputs allow it at all. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from torch.utils.data import ConcatDataset
from utility import MODALITIES, Federation, batch_of, prepare

from modalities.fusion import create_model
from modalities.fusion.model import mask_key
from polyclinic.study import Study, default_study


@torch.no_grad()
def features(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Modality -> ``(N, F)`` inputs as the encoders read them, 0 where the modality is absent."""
    imaging, genomics = model.encoders["imaging"], model.encoders["genomics"]
    genome = genomics.normalised(batch["genome"], batch["genome_missing"])
    raw = {"records": batch["records"], "imaging": imaging.cells(batch["image"]).flatten(1),
           "genomics": torch.cat([genome, batch["genome_missing"]], dim=1)}
    return {m: (raw[m] * batch[mask_key(m)].reshape(-1, 1)).numpy() for m in MODALITIES}


def design(feats: dict[str, np.ndarray], batch: dict[str, torch.Tensor], kept: tuple[str, ...]) -> np.ndarray:
    masks = [batch[mask_key(m)].reshape(-1, 1).numpy() for m in kept]
    return np.concatenate([feats[m] for m in kept] + masks, axis=1)


def subset_aurocs(study: Study, federation: Federation) -> dict[str, float]:
    """Held-out AUROC of a logistic regression on each set of modalities, named like ``imaging+records``."""
    train = batch_of(ConcatDataset(federation.train))
    validation = batch_of(ConcatDataset(list(federation.validation.values())))
    model = create_model(study)
    train_features, validation_features = features(model, train), features(model, validation)
    auroc = {}
    for size in (1, 2, 3):
        for kept in combinations(MODALITIES, size):
            fitted = LogisticRegressionCV(Cs=10, max_iter=5000).fit(design(train_features, train, kept),
                                                                     train["label"].numpy())
            scores = fitted.decision_function(design(validation_features, validation, kept))
            auroc["+".join(kept)] = float(roc_auc_score(validation["label"].numpy(), scores))
    return auroc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--patients", type=int, default=200, help="patients per site")
    parser.add_argument("--seeds", type=int, default=5, help="federations (as utility.py); medians")
    args = parser.parse_args()
    study = default_study()
    work = Path(tempfile.mkdtemp(prefix="polyclinic-input-signal-"))
    try:
        runs = [subset_aurocs(study, prepare(work / f"seed-{seed}", study, args.sites, args.patients, seed))
                for seed in range(args.seeds)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    auroc = {subset: statistics.median(run[subset] for run in runs) for subset in runs[0]}
    best = max(MODALITIES, key=auroc.__getitem__)
    rest = "+".join(m for m in MODALITIES if m != best)
    print(json.dumps({
        "auroc": auroc, "best_single": best, "seeds": args.seeds,
        "all_over_best_single": auroc["+".join(MODALITIES)] / auroc[best],
        "others_over_best": auroc[rest] / auroc[best],
    }, sort_keys=True))


if __name__ == "__main__":
    main()
