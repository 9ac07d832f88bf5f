"""``polyclinic demo``: synthetic hospitals -> prepared sites -> federated DP training -> evaluation.

Offline, in one command: hospitals are synthesised, each site's de-identified cohort is prepared, the
study is trained over Flower's Simulation Engine with DP-SGD at every site under its (epsilon, delta), and
the global model is scored on all sites' held-out patients. ``OUT`` then holds the layout of DESIGN.md:
``sites/``, ``state/``, ``coordinator/`` (checkpoints), ``model/`` (weights and model card), ``report/``
(the auditor's report) and ``summary.json``. Each run starts from empty folders: a demo never resumes an
earlier one.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from client.parallel import default_workers
from client.site import MODALITY_ORDER, Site
from client.site_audit import record_site_run, site_trail
from client.site_report import SiteReport
from modalities.settings import ConfigError
from polyclinic.console import print_json, progress_bar, stderr
from polyclinic.evaluation import held_out_auroc
from polyclinic.logs import site_log
from polyclinic.report_command import write_run_report
from polyclinic.simulation import simulate
from polyclinic.study import Study, load_study
from polyclinic.synth import generate
from server.model_card import CARD_JSON, MODEL_FILE
from server.rounds import RoundSummary

OUTPUTS = ("sites", "state", "coordinator", "model", "report", "summary.json")


def _study(args: argparse.Namespace) -> Study:
    study = load_study(args.study)
    return study.model_copy(update={"dp": study.dp.model_copy(update={"rounds": args.rounds})})


def _round_line(summary: RoundSummary) -> str:
    trained = [r for r in summary.train if "epsilon-spent" in r.metrics]
    refused = [f"{r.site_id} ({r.refused or 'failed'})" for r in summary.train if r.refused or r.error]
    epsilon = ", ".join(f"{r.site_id} {r.metrics['epsilon-spent']:.2f}/{r.metrics['epsilon-budget']:g}"
                        for r in sorted(trained, key=lambda r: r.site_id))
    auroc = summary.aggregated.get("auroc", math.nan)
    line = (f"round {summary.round}/{summary.rounds}: {len(trained)} sites trained; federated validation "
            f"AUROC {auroc:.3f}; epsilon {epsilon or 'none'}")
    return line + (f"; refused: {', '.join(refused)}" if refused else "")


def run_demo(args: argparse.Namespace, *, as_json: bool) -> int:
    started = time.perf_counter()
    for name in OUTPUTS:
        target = args.out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    study = _study(args)
    sites_dir, state_dir = args.out / "sites", args.out / "state"
    truth = generate(sites_dir, sites=args.sites, patients=args.patients, seed=args.seed,
                     epsilon=args.epsilon)
    reports: list[SiteReport] = []
    for site_truth in truth.sites:
        site = Site(sites_dir / site_truth.id, study, state_dir / site_truth.id)
        with site_log(site.state), progress_bar(not as_json) as progress:
            reports.append(site.run(build_cache=True, progress=progress, workers=default_workers()))
        record_site_run(site_trail(site.state, reports[-1].site_id), reports[-1])
    prepared = time.perf_counter() - started
    stderr.print(f"prepared {len(reports)} sites in {prepared:.1f} s; federated training starts "
                 f"({study.dp.rounds} rounds, {study.fusion.fusion} fusion, DP epsilon {args.epsilon:g})",
                 highlight=False)
    simulate(study, sites_dir, state_dir, args.out, sites=len(reports),
             on_round=lambda s: stderr.print(_round_line(s), highlight=False))
    model_file = args.out / "model" / MODEL_FILE
    if not model_file.exists():
        raise ConfigError(f"the federated run ended without a global model ({model_file} is missing); "
                          "the lines above say which round failed")
    card = json.loads((args.out / "model" / CARD_JSON).read_text(encoding="utf-8"))
    held_out = held_out_auroc(study, torch.load(model_file, weights_only=True),
                              [state_dir / r.site_id for r in reports])
    report = write_run_report(study, args.out, args.out / "report")
    summary = _summary(args, reports, card, held_out, time.perf_counter() - started)
    summary["report"] = {"html": str(args.out / "report" / "report.html"), "problems": report.facts.problems}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")
    if as_json:
        print_json(summary)
    else:
        _render(reports, summary, Console())
    return 0


def _summary(args: argparse.Namespace, reports: list[SiteReport], card: dict[str, Any], held_out: Any,
             seconds: float) -> dict[str, Any]:
    return {
        "auroc": held_out.auroc, "held_out_patients": held_out.patients,
        "rounds": card["training"]["rounds"], "seconds": round(seconds, 1), "fusion": card["model"]["fusion"],
        "sites": {r.site_id: {**r.counts(), "privacy": card["privacy_by_site"].get(r.site_id)}
                  for r in reports},
        "federated_validation": card["federated_validation"], "epsilon_budget": args.epsilon,
        "out": str(args.out),
    }


def _render(reports: list[SiteReport], summary: dict[str, Any], console: Console) -> None:
    table = Table(title="synthetic federation", title_justify="left")
    for column in ("site", "patients", "no consent", "used", "all three", "positive", "rejected",
                   "epsilon spent"):
        table.add_column(column, justify="left" if column == "site" else "right", no_wrap=True)
    for r in reports:
        p = r.patients
        privacy = summary["sites"][r.site_id]["privacy"]
        table.add_row(r.site_id, str(p.discovered), str(sum(p.consent_excluded.values())), str(p.included),
                      str(p.by_combination.get("+".join(MODALITY_ORDER), 0)),
                      "n/a" if p.prevalence is None else f"{p.prevalence:.0%}",
                      str(sum(sum(m.rejected.values()) for m in r.modalities.values())),
                      "did not train" if privacy is None else
                      f"{privacy['epsilon_spent']:.2f} of {privacy['epsilon_budget']:g}")
    console.print(table)
    auroc = summary["auroc"]
    console.print(f"global model after {summary['rounds']} rounds: AUROC "
                  f"{'n/a' if auroc is None else f'{auroc:.3f}'} on {summary['held_out_patients']} held-out "
                  f"patients of all sites; done in {summary['seconds']:.1f} s")
    console.print(f"model and model card: {summary['out']}/model; checkpoints: {summary['out']}/coordinator; "
                  f"auditor report: {summary['report']['html']}")
