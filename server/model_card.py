"""The global model as the coordinator hands it over: weights plus a model card people can read.

``OUT/model/model.pt`` is the state dict (``torch.load(..., weights_only=True)``); ``study.json`` is the study
it was trained under, the architecture and the input recipe that ``polyclinic predict`` rebuilds (weights
must never meet features cut to another study); ``model-card.json`` and ``model-card.md`` say what the model
is for, what it was trained on (counts, never patients), under which privacy budget each site trained and
how it scored on the sites' held-out patients, round by round.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from modalities.fusion import count_trainable_parameters, create_model
from server.checkpoint import Checkpoint

MODEL_FILE, STUDY_JSON, CARD_JSON, CARD_MD = "model.pt", "study.json", "model-card.json", "model-card.md"


def _last_privacy(history: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per site, the epsilon it last reported (spent, remaining, budget) and the patients it trained on."""
    sites: dict[str, dict[str, float]] = {}
    for entry in history:
        for reply in entry["train"]:
            metrics = reply["metrics"]
            if "epsilon-spent" in metrics:
                sites[reply["site"]] = {"epsilon_spent": metrics["epsilon-spent"],
                                        "epsilon_remaining": metrics["epsilon-remaining"],
                                        "epsilon_budget": metrics["epsilon-budget"],
                                        "examples": metrics["num-examples"], "round": entry["round"]}
    return sites


def model_card(study: Any, checkpoint: Checkpoint) -> dict[str, Any]:
    model = create_model(study)
    model.load_state_dict(checkpoint.weights)
    rounds = [{"round": e["round"], **{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                       for k, v in e["aggregated"].items()}} for e in checkpoint.history]
    return {
        "model": {"study": study.name, "fusion": study.fusion.fusion,
                  "modalities": list(model.modalities),
                  "trainable_parameters": count_trainable_parameters(model)},
        "intended_use": "research on the study's target condition; not a medical device; every prediction "
                        "comes with per-modality contributions and must be read by a clinician",
        "training": {"run_id": checkpoint.run_id, "rounds": checkpoint.round, "strategy": checkpoint.strategy,
                     "differential_privacy": study.dp.enabled, "accountant": study.dp.accountant,
                     "max_grad_norm": study.dp.max_grad_norm},
        "privacy_by_site": _last_privacy(checkpoint.history),
        "federated_validation": rounds,
        "limitations": "validation metrics are example-weighted means of per-site figures on held-out "
                       "patients; sites with fewer than 10 held-out patients do not report them",
    }


def _markdown(card: dict[str, Any]) -> str:
    lines = [f"# Model card: {card['model']['study']} ({card['model']['fusion']} fusion)", "",
             f"- modalities: {', '.join(card['model']['modalities'])}",
             f"- trainable parameters: {card['model']['trainable_parameters']}",
             f"- run {card['training']['run_id']}, {card['training']['rounds']} rounds, "
             f"strategy {card['training']['strategy']['name']}",
             f"- intended use: {card['intended_use']}", "", "## Privacy spent per site", "",
             "| site | patients | epsilon spent | budget | remaining |", "|---|---|---|---|---|"]
    for site, p in sorted(card["privacy_by_site"].items()):
        lines.append(f"| {site} | {p['examples']:.0f} | {p['epsilon_spent']:.3f} | {p['epsilon_budget']:g} | "
                     f"{p['epsilon_remaining']:.3f} |")
    lines += ["", "## Federated validation", "", "| round | AUROC | loss |", "|---|---|---|"]
    for r in card["federated_validation"]:
        auroc, loss = r.get("auroc"), r.get("loss")
        lines.append(f"| {r['round']} | {'n/a' if auroc is None else f'{auroc:.3f}'} | "
                     f"{'n/a' if loss is None else f'{loss:.3f}'} |")
    lines += ["", f"Limitations: {card['limitations']}", ""]
    return "\n".join(lines)


def write_model(folder: Path, study: Any, checkpoint: Checkpoint) -> dict[str, Any]:
    """Weights, the study and both cards into ``folder``; returns the card."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint.weights, folder / MODEL_FILE)
    (folder / STUDY_JSON).write_text(study.model_dump_json(by_alias=True, indent=2) + "\n", encoding="utf-8")
    card = model_card(study, checkpoint)
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_MD).write_text(_markdown(card), encoding="utf-8")
    return card
