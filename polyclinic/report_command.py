"""``polyclinic report``: gathering, writing and recording the report (the parser is in
``polyclinic/report_cli.py``, which imports this only when the command runs: it pulls in torch and the
model)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from client.cohort import VALIDATION
from client.cohort_dataset import CohortDataset
from client.site_config import SITE_FILE, SiteConfig, load_site_config, resolve_state
from compliance.fairness import DEFAULT_K, sensitive_columns, site_fairness
from compliance.processing_record import processing_record
from compliance.report import SiteInputs, build_report, record_report, write_report
from compliance.report_facts import FairnessFacts, ReportFacts
from compliance.report_gather import Budget, Layout, find_layout
from modalities.fusion import FusionModel, create_model, predict
from modalities.settings import ConfigError
from polyclinic.study import Study, load_study
from privacy.ledger import LedgerError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
FAIRNESS_SOURCE = "recomputed by the report from the global model on the site's validation split"



def _site_folder(layout: Layout, state: Path, given: Path | None) -> Path | None:
    """Where the site's site.toml is: --site, the run's (or a STATE's ``../../``) ``sites/<name>``, or the
    folder whose state STATE is (``SITE/.polyclinic``)."""
    if given is not None:
        return given
    beside = (state.parent.parent if layout.kind == "site" else layout.root) / "sites" / state.name
    if (beside / SITE_FILE).is_file():
        return beside
    owner = state.parent
    if layout.kind == "site" and (owner / SITE_FILE).is_file():
        config, _ = load_site_config(owner)
        if resolve_state(owner, config, None).resolve() == state.resolve():
            return owner
    return None


def _config(folder: Path | None, site_id: str) -> SiteConfig | None:
    if folder is None:
        return None
    config, defaulted = load_site_config(folder)
    if defaulted:
        raise ConfigError(f"report: {folder} has no {SITE_FILE}; give the folder that holds it with --site")
    if config.site.id != site_id:
        raise ConfigError(f"report: {folder / SITE_FILE} is site {config.site.id!r}, but the state "
                          f"belongs to {site_id!r}; give the right site folder with --site")
    return config


def _model(study: Study, path: Path | None) -> FusionModel | None:
    if path is None:
        return None
    model = create_model(study)
    try:
        model.load_state_dict(torch.load(path, weights_only=True))
    except RuntimeError as exc:
        raise ConfigError(f"report: {path} does not fit the study's model ({str(exc).splitlines()[0]}); "
                          "give the run's study with --study") from exc
    return model


def site_fairness_facts(study: Study, model: FusionModel | None,
                        state: Path) -> tuple[FairnessFacts | None, str | None]:
    """The site's fairness table from ``model`` on its validation split (k = 10), or why there is none."""
    if model is None:
        return None, "no global model to evaluate (give --model MODEL.pt)"
    try:
        dataset = CohortDataset(state, study, VALIDATION)
    except FileNotFoundError as exc:
        return None, str(exc)
    if len(dataset) == 0:
        return None, "no validation patients in the site's prepared cohort"
    batch = dataset.as_batch()
    scores = predict(model, batch).probability.numpy()
    table = site_fairness(batch["label"].numpy().astype(int), scores,
                          sensitive_columns(p.sensitive for p in dataset.patients), k=DEFAULT_K)
    return FairnessFacts(source=FAIRNESS_SOURCE, table=table), None


@dataclass(frozen=True)
class Written:
    facts: ReportFacts
    digest: str
    """SHA-256 of report.json, as recorded in the audit trails."""
    unrecorded: list[str]
    """Trails the ``report.generated`` event could not be written to."""


def write_run_report(study: Study, source: Path, out: Path, *, site: Path | None = None,
                     model: Path | None = None) -> Written:
    """Gather, write (``out/report.html``, ``out/report.json``) and record the report of ``source``."""
    layout = find_layout(source)
    global_model = _model(study, model or layout.model)
    inputs, configs = {}, {}
    for site_id, state in layout.states.items():
        config = _config(_site_folder(layout, state, site), site_id)
        configs[site_id] = config
        budget = None if config is None else Budget(config.privacy.epsilon, config.privacy.delta, SITE_FILE)
        inputs[site_id] = SiteInputs(budget, *site_fairness_facts(study, global_model, state))
    only = next(iter(configs.values())) if layout.kind == "site" else None
    facts = build_report(layout, study=study.name, inputs=inputs,
                         processing_record=processing_record(study, only))
    digest = write_report(facts, out)
    return Written(facts, digest, record_report(layout, facts.kind, digest))


def run(args: argparse.Namespace) -> int:
    try:
        written = write_run_report(load_study(args.study), args.source, args.out, site=args.site,
                                   model=args.model)
    except LedgerError as exc:
        print(f"polyclinic report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    facts, digest, unrecorded = written.facts, written.digest, written.unrecorded
    if args.json:
        sys.stdout.write(json.dumps({"out": str(args.out), "report": digest, "problems": facts.problems,
                                     "unrecorded": unrecorded}, sort_keys=True) + "\n")
    for line in [*facts.problems, *unrecorded]:
        print(f"polyclinic report: {line}", file=sys.stderr)
    print(f"polyclinic report: wrote {args.out}/report.html and report.json (sha256 {digest[:16]}); "
          f"{len(facts.problems)} problem(s)", file=sys.stderr)
    return EXIT_FAILED if facts.problems else EXIT_OK
