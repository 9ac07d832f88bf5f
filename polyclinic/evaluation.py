"""The global model on every site's held-out patients together: the demo's honest headline figure.

Only possible where one party holds every site's data, as the demo does with its synthetic hospitals; a
real coordinator sees the sites' own validation figures instead (``server/rounds.py``). Validation patients
are the ones each site's split kept out of training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import roc_auc_score

from client.cohort import VALIDATION
from client.cohort_dataset import CohortDataset
from modalities.fusion import create_model, predict


@dataclass(frozen=True)
class HeldOut:
    auroc: float | None
    """None when the held-out patients are all of one class."""
    patients: int
    positives: int


def held_out_auroc(study: Any, weights: Mapping[str, torch.Tensor], states: Iterable[Path]) -> HeldOut:
    """AUROC of ``weights`` on the validation split of every prepared site state in ``states``."""
    model = create_model(study)
    model.load_state_dict(dict(weights))
    labels, scores = [], []
    for state in states:
        dataset = CohortDataset(state, study, VALIDATION)
        if len(dataset) == 0:
            continue
        batch = dataset.as_batch()
        scores.append(predict(model, batch).probability)
        labels.append(batch["label"])
    if not labels:
        return HeldOut(None, 0, 0)
    y, p = torch.cat(labels), torch.cat(scores)
    positives = int(y.sum())
    auroc = float(roc_auc_score(y.numpy(), p.numpy())) if 0 < positives < len(y) else None
    return HeldOut(auroc, len(y), positives)
