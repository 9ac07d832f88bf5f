"""``polyclinic predict``: one patient through the site pipeline into the global model (the parser is in
``polyclinic/predict_cli.py``, which imports this only when the command runs: torch, the site pipeline and
the model are slow to import).

The model is rebuilt from the study saved beside its weights (``study.json``), so its architecture and its
input recipe are the ones it was trained under. The patient walks the unchanged Site pipeline
(client/site.py) into a temporary STATE with a fresh pseudonym key, and the model input is assembled by the
training path's :class:`client.cohort_dataset.CohortDataset`: predict and training see identical inputs.
The temporary STATE is deleted when the command ends and no log file is written, so nothing of the
patient stays behind; stdout names files relative to PATIENT_DIR, without the resource fragment (a FHIR
id may identify the patient).

Research consent does not gate a prediction. A FHIR research Consent governs the use of a patient's data
for research (training, evaluation); a prediction a clinician asks for about their own patient is care
(GDPR Art. 9(2)(h)), keeps nothing and changes no model. So the Site runs with the care purpose, which skips
the research-consent decision: neither a missing research permit nor an objection to research use stops a
prediction.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from client.cohort_dataset import CohortDataset
from client.site import RECORDS, Site
from client.site_config import SiteConfig, SiteSection
from client.site_report import SiteReport
from modalities.fusion import FusionModel, Prediction, create_model, predict
from modalities.settings import ConfigError, validate_config
from polyclinic.console import print_json
from polyclinic.study import Study, load_study
from server.model_card import CARD_JSON, MODEL_FILE, STUDY_JSON

EXIT_OK = 0
CARE_SITE = SiteConfig(site=SiteSection(id="predict"))
"""The site configuration a prediction runs under: a site id that is not derived from the patient folder's
name (it may be the patient's)."""
WHERE_TO_PUT = ("put the patient's DICOM files under imaging/, their FHIR Bundle or NDJSON under records/ "
                "and their genomics table under genomics/")


@dataclass(frozen=True)
class TrainedModel:
    weights: Path
    study: Study
    card: dict[str, Any] | None
    model: FusionModel


def run(args: argparse.Namespace) -> int:
    trained = load_trained_model(args.model, args.study)
    if not args.patient_dir.is_dir():
        raise ConfigError(f"{args.patient_dir}: no such patient folder; {WHERE_TO_PUT}")
    with tempfile.TemporaryDirectory(prefix="polyclinic-predict-") as work:
        report, sample = prepare_patient(args.patient_dir, trained.study, Path(work) / "state")
    batch = {key: value.unsqueeze(0) for key, value in sample.items()}
    answer = to_answer(trained, report, batch, predict(trained.model, batch))
    if args.json:
        print_json(answer)
    else:
        render(answer, Console())
    return EXIT_OK


def load_trained_model(path: Path, given_study: Path | None) -> TrainedModel:
    """The global model from the coordinator's model folder (or its ``model.pt``), under its own study."""
    weights = path / MODEL_FILE if path.is_dir() else path
    if not weights.is_file():
        what = f"no {MODEL_FILE} in this folder" if path.is_dir() else "no such model"
        raise ConfigError(f"{path}: {what}; pass the model folder the coordinator writes (OUT/model) or its "
                          f"{MODEL_FILE}")
    study, source = _study(weights.parent, given_study)
    card = _card(weights.parent / CARD_JSON)
    facts = (card or {}).get("model", {})
    described = (facts.get("study"), facts.get("fusion"))
    if facts and described != (study.name, study.fusion.fusion):
        raise ConfigError(f"{weights.parent / CARD_JSON}: the card describes study {described[0]!r} "
                          f"({described[1]} fusion) but {source} is {study.name!r} ({study.fusion.fusion}); "
                          "pass a model folder whose files belong together")
    try:
        state = torch.load(weights, weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise ConfigError(f"{weights}: not a saved model ({str(exc).splitlines()[0]}); pass the "
                          f"{MODEL_FILE} the coordinator wrote") from exc
    model = create_model(study)
    misfit = _misfit(model, state)
    if misfit:
        raise ConfigError(f"{weights}: the weights do not fit the model of {source} ({misfit}); pass the "
                          "folder the weights came in, or train again if they predate this version's model")
    model.load_state_dict(state)
    return TrainedModel(weights, study, card, model)


def _misfit(model: FusionModel, state: object) -> str | None:
    """Why ``state`` does not load into ``model`` (counts and a first name), or None when it fits."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a state dict"
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    kinds = {"missing": sorted(expected.keys() - found.keys()),
             "unexpected": sorted(found.keys() - expected.keys()),
             "of another shape": sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])}
    problems = [f"{len(names)} {what}, e.g. {names[0]}" for what, names in kinds.items() if names]
    return "; ".join(problems) or None


def _study(folder: Path, given: Path | None) -> tuple[Study, str]:
    """The study saved with the weights (``--study`` may only repeat it), else ``--study`` or the default."""
    saved = folder / STUDY_JSON
    if not saved.is_file():
        source = f"--study {given}" if given else "the built-in default study"
        print(f"note: {folder} has no {STUDY_JSON} (a model written before the study was saved with it); "
              f"using {source}, against which the weights are checked", file=sys.stderr)
        return load_study(given), source
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{saved}: not readable JSON ({exc}); copy the model folder again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{saved}: not a study (a JSON object is expected); copy the model folder again")
    study = validate_config(Study, data, saved)
    if given is not None and load_study(given) != study:
        raise ConfigError(f"--study {given} is not the study the model was trained under ({saved}); drop "
                          "--study: predict always uses the model's own study")
    return study, str(saved)


def _card(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc}); copy the model folder again") from exc
    return card if isinstance(card, dict) else None


def prepare_patient(patient_dir: Path, study: Study,
                    state: Path) -> tuple[SiteReport, dict[str, torch.Tensor]]:
    """The site pipeline over one patient's folder into ``state``, and their model input as training
    assembles it; a ConfigError saying what to do when the folder holds no usable patient or several."""
    report = Site(patient_dir, study, state, config=CARE_SITE, purpose="care").run(build_cache=True)
    _require_one_patient(report, patient_dir)
    return report, CohortDataset(state, study)[0]


def _require_one_patient(report: SiteReport, patient_dir: Path) -> None:
    patients = report.patients
    holds = ", ".join(f"{name}: {counts.items}" for name, counts in report.modalities.items())
    if patients.discovered > 1:
        raise ConfigError(f"{patient_dir}: holds the data of {patients.discovered} patients (patients per "
                          f"modality: {holds}); predict takes one patient: copy only that patient's files "
                          "into a folder of their own")
    if patients.discovered == 0:
        first = f"; first rejection: {_file(report.rejections[0].where)}: {report.rejections[0].message}" \
            if report.rejections else ""
        raise ConfigError(f"{patient_dir}: no usable patient data{first}; {WHERE_TO_PUT}")
    if patients.included:
        return
    code = next(iter(patients.consent_excluded | patients.excluded))
    records = [r for r in report.rejections if r.code.startswith(f"{RECORDS}.")]
    if code == "cohort.no-records":
        raise ConfigError(f"{patient_dir / RECORDS}: no FHIR record of this patient; predict runs the site "
                          "pipeline, which starts from the records (demographics, labs, conditions): add "
                          "the patient's FHIR Bundle or NDJSON export there")
    if code == "cohort.records-rejected" and records:
        first = records[0]
        raise ConfigError(f"{patient_dir / _file(first.where)}: {first.code}: {first.message}; "
                          f"{first.hint or 'fix or export the records again'}")
    raise ConfigError(f"{patient_dir}: the patient cannot be used ({code}); run `polyclinic site check` on "
                      "the folder to see why")


def _file(where: str) -> str:
    """A rejection's file, without the fragment (``#Patient/<id>`` may identify the patient)."""
    return where.split("#", 1)[0]


def to_answer(trained: TrainedModel, report: SiteReport, batch: dict[str, torch.Tensor],
              prediction: Prediction) -> dict[str, Any]:
    """The one JSON object of ``--json``: probability, modalities, rejections, the card's use and caveat."""
    modalities = {}
    for name in trained.model.modalities:
        used = bool(batch[f"{name}_mask"][0] > 0.5)
        status = "used" if used else "rejected" if report.modalities[name].rejected else "missing"
        attention = prediction.attention.get(name)
        modalities[name] = {"status": status, "contribution": float(prediction.contributions[name][0]),
                            "attention": None if attention is None else float(attention[0])}
    card = trained.card or {}
    training = card.get("training", {})
    return {
        "probability": float(prediction.probability[0]),
        "target": {"study": trained.study.name, "codes": list(trained.study.records.target_codes),
                   "index_date": trained.study.records.index_date.isoformat()},
        "modalities": modalities,
        "rejected": [{"file": _file(r.where), "code": r.code, "message": r.message, "hint": r.hint}
                     for r in report.rejections],
        "notes": [f"{name}: {note}" for name, counts in report.modalities.items() for note in counts.notes],
        "model": {"path": str(trained.weights), "fusion": trained.study.fusion.fusion,
                  "run_id": training.get("run_id"), "rounds": training.get("rounds")},
        "intended_use": card.get("intended_use", "unknown: no model card beside the weights"),
        "caveat": caveat(card),
    }


def caveat(card: dict[str, Any]) -> str:
    """One line on what the figure is worth: who the model learnt from and how well it did."""
    sites = card.get("privacy_by_site", {})
    patients = int(sum(site["examples"] for site in sites.values()))
    validated = [r["auroc"] for r in card.get("federated_validation", []) if r.get("auroc") is not None]
    scored = f", federated validation AUROC {validated[-1]:.2f}" if validated else \
        ", with no validation AUROC on record"
    learnt = f"learnt under differential privacy from {patients} patients at {len(sites)} sites{scored}" \
        if sites else "no model card: who it learnt from and how well it does are unknown"
    return f"decision support, not a diagnosis: a research model {learnt}; read it with the whole patient"


def render(answer: dict[str, Any], console: Console) -> None:
    """The clinician's view: the probability, what each modality did, what was set aside and why."""
    target = answer["target"]
    console.print(f"[bold]probability of the target condition: {answer['probability']:.1%}[/] "
                  f"(study {escape(target['study'])}: {escape(', '.join(target['codes']))}; inputs as of "
                  f"{target['index_date']})", highlight=False)
    table = Table(title="modalities", title_justify="left")
    for column in ("modality", "status", "contribution", "attention share"):
        table.add_column(column, justify="left" if column in ("modality", "status") else "right")
    for name, facts in answer["modalities"].items():
        attention = "n/a" if facts["attention"] is None else f"{facts['attention']:.0%}"
        table.add_row(name, facts["status"], f"{100 * facts['contribution']:+.1f} pp", attention)
    console.print(table)
    console.print("contribution: how much the probability falls (or rises) without that modality, in "
                  "percentage points", highlight=False)
    for rejection in answer["rejected"]:
        hint = f" ({escape(rejection['hint'])})" if rejection["hint"] else ""
        console.print(f"[red]rejected[/] {escape(rejection['file'])}: {rejection['code']}: "
                      f"{escape(rejection['message'])}{hint}", highlight=False)
    for note in answer["notes"]:
        console.print(f"[yellow]note[/] {escape(note)}", highlight=False)
    console.print(f"intended use: {escape(answer['intended_use'])}", highlight=False)
    console.print(f"caveat: {escape(answer['caveat'])}", highlight=False)
