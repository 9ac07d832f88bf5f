"""``polyclinic predict`` on the demo's real model folder and patient folders copied out of its synthetic
hospitals: the answer's shape, what it says about missing and rejected data, the exit-2 cases, that the
probability is the training path's for the same patient, and that nothing identifying is printed or kept."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from leak_search import contains, identifiers, leaks

from client.cohort import CohortManifest
from client.cohort_dataset import CohortDataset
from modalities.fusion import create_model, predict
from polyclinic.cli import main
from polyclinic.predict_command import load_trained_model
from polyclinic.synth import GroundTruth, PatientTruth
from polyclinic.synth.generate import GROUND_TRUTH
from privacy.pseudonym import Pseudonymiser
from server.model_card import CARD_JSON, STUDY_JSON

pytestmark = pytest.mark.slow

SITE = "hospital-a"
"""One JSON Bundle per patient and a CSV genomics table: easy to cut one patient out of."""
KEYS = {"probability", "target", "modalities", "rejected", "notes", "model", "intended_use", "caveat"}


def _truth(demo_run) -> GroundTruth:
    return GroundTruth.load(demo_run.out / "sites" / GROUND_TRUTH)


def _patient(demo_run, imaging: str, consent: str = "permit") -> PatientTruth:
    """The first patient of SITE with a genomics sample, that imaging outcome and that research consent."""
    return next(p for p in _truth(demo_run).site(SITE).patients
                if p.consent == consent and p.imaging == imaging and p.sample_id is not None)


def _copy_patient(demo_run, patient: PatientTruth, folder: Path) -> Path:
    """The patient's files in the site layout, found through the ground truth: their Bundle, their CT
    series (and any bad DICOM file of theirs) and their row of the genomics table."""
    site_dir = demo_run.out / "sites" / SITE
    truth = _truth(demo_run).site(SITE)
    files = [*patient.imaging_files,
             *(b.path for b in truth.bad_files if b.patient == patient.mrn and b.modality == "imaging"),
             *(str(p.relative_to(site_dir)) for p in (site_dir / "records").iterdir()
               if patient.mrn in p.read_text(encoding="utf-8"))]
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site_dir / name, folder / name)
    table = site_dir / "genomics" / "expression.csv"
    with table.open(newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    mine = [row for row in rows[1:] if row[1] == patient.mrn]
    if mine:
        (folder / "genomics").mkdir(parents=True, exist_ok=True)
        with (folder / "genomics" / table.name).open("a", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([rows[0], *mine] if out.tell() == 0 else mine)
    return folder


def _predict(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["predict", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(demo_run, folder: Path, capsys) -> dict:
    code, out, err = _predict([str(demo_run.out / "model"), str(folder), "--json"], capsys)
    assert code == 0, err
    assert out.count("\n") == 1
    return json.loads(out)


def test_a_patient_with_every_modality_gets_one_json_object(demo_run, tmp_path, capsys) -> None:
    answer = _json(demo_run, _copy_patient(demo_run, _patient(demo_run, "series"), tmp_path), capsys)
    card = json.loads((demo_run.out / "model" / CARD_JSON).read_text())
    assert set(answer) == KEYS
    assert 0 < answer["probability"] < 1
    assert {m: f["status"] for m, f in answer["modalities"].items()} == \
        {"imaging": "used", "records": "used", "genomics": "used"}
    assert all(isinstance(f["contribution"], float) and f["attention"] is None  # late fusion has no attention
               for f in answer["modalities"].values())
    assert answer["rejected"] == []
    assert answer["target"]["codes"] == json.loads((demo_run.out / "model" / STUDY_JSON).read_text())[
        "records"]["target-codes"]
    assert answer["intended_use"] == card["intended_use"]
    trained_on = sum(site["examples"] for site in card["privacy_by_site"].values())
    assert "\n" not in answer["caveat"] and f"from {trained_on:.0f} patients at 3 sites" in answer["caveat"]
    assert answer["model"]["run_id"] == card["training"]["run_id"] and answer["model"]["rounds"] == 2


def test_the_probability_is_the_training_paths_for_the_same_patient(demo_run, tmp_path, capsys) -> None:
    patient = _patient(demo_run, "series")
    answer = _json(demo_run, _copy_patient(demo_run, patient, tmp_path), capsys)
    state = demo_run.out / "state" / SITE
    trained = load_trained_model(demo_run.out / "model", None)
    cohort = CohortDataset(state, trained.study)
    pseudonym = Pseudonymiser.for_state(state).patient(patient.mrn)
    index = next(i for i, p in enumerate(cohort.patients) if p.pseudonym == pseudonym)
    model = create_model(trained.study)
    model.load_state_dict(torch.load(demo_run.out / "model" / "model.pt", weights_only=True))
    expected = predict(model, {k: v.unsqueeze(0) for k, v in cohort[index].items()})
    assert answer["probability"] == pytest.approx(float(expected.probability[0]), abs=1e-6)
    for name, facts in answer["modalities"].items():
        assert facts["contribution"] == pytest.approx(float(expected.contributions[name][0]), abs=1e-6)


def test_missing_and_rejected_imaging_are_told_apart(demo_run, tmp_path, capsys) -> None:
    without = _json(demo_run, _copy_patient(demo_run, _patient(demo_run, "none"), tmp_path / "a"), capsys)
    assert without["modalities"]["imaging"] == {"status": "missing", "contribution": 0.0, "attention": None}
    assert without["modalities"]["records"]["status"] == "used" and without["rejected"] == []
    broken = _patient(demo_run, "truncated")
    answer = _json(demo_run, _copy_patient(demo_run, broken, tmp_path / "b"), capsys)
    assert answer["modalities"]["imaging"]["status"] == "rejected"
    bad = next(b.path for b in _truth(demo_run).site(SITE).bad_files if b.patient == broken.mrn)
    assert [r["file"] for r in answer["rejected"]] == [bad]
    assert answer["rejected"][0]["code"].startswith("imaging.") and answer["rejected"][0]["message"]


def test_research_consent_does_not_gate_care(demo_run, tmp_path, capsys) -> None:
    """SITE is opt-in: a patient without a research permit is out of its training cohort, yet predicted; so
    is a patient who objects to research use (a prediction for their clinician is care, not research)."""
    unasked = _patient(demo_run, "series", "none")
    state = demo_run.out / "state" / SITE
    cohort = {p.pseudonym for p in CohortManifest.load(state).patients}
    assert Pseudonymiser.for_state(state).patient(unasked.mrn) not in cohort
    answer = _json(demo_run, _copy_patient(demo_run, unasked, tmp_path / "a"), capsys)
    assert answer["modalities"]["records"]["status"] == "used"
    objecting = _copy_patient(demo_run, _patient(demo_run, "series", "deny"), tmp_path / "b")
    answer = _json(demo_run, objecting, capsys)
    assert answer["modalities"]["records"]["status"] == "used" and 0 <= answer["probability"] <= 1


def test_the_table_for_people_says_probability_use_and_caveat(demo_run, tmp_path, capsys) -> None:
    folder = _copy_patient(demo_run, _patient(demo_run, "none"), tmp_path)
    code, out, _ = _predict([str(demo_run.out / "model" / "model.pt"), str(folder)], capsys)
    assert code == 0
    for text in ("probability of the target condition", "imaging", "missing", "intended use:", "caveat:"):
        assert text in out


def _one_line_exit_2(args: list[str], capsys) -> str:
    code, out, err = _predict(args, capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_bad_input_exits_2_with_one_line_naming_the_file(demo_run, tmp_path, capsys) -> None:
    model = str(demo_run.out / "model")
    two = tmp_path / "two"
    for patient in (_patient(demo_run, "series"), _patient(demo_run, "none")):
        _copy_patient(demo_run, patient, two)
    assert "2 patients" in _one_line_exit_2([model, str(two)], capsys)
    one = _copy_patient(demo_run, _patient(demo_run, "series"), tmp_path / "one")
    line = _one_line_exit_2([str(tmp_path / "nowhere"), str(one)], capsys)
    assert str(tmp_path / "nowhere") in line and "OUT/model" in line
    (tmp_path / "empty").mkdir()
    assert "no usable patient data" in _one_line_exit_2([model, str(tmp_path / "empty")], capsys)
    assert "no such patient folder" in _one_line_exit_2([model, str(tmp_path / "absent")], capsys)
    no_records = tmp_path / "no-records"
    shutil.copytree(one, no_records)
    shutil.rmtree(no_records / "records")
    assert "no FHIR record" in _one_line_exit_2([model, str(no_records)], capsys)


def test_weights_that_do_not_fit_the_study_are_refused(demo_run, tmp_path, capsys) -> None:
    model = shutil.copytree(demo_run.out / "model", tmp_path / "model")
    one = _copy_patient(demo_run, _patient(demo_run, "series"), tmp_path / "one")
    study = json.loads((model / STUDY_JSON).read_text())
    study["fusion"]["d-model"] = 16
    (model / STUDY_JSON).write_text(json.dumps(study))
    line = _one_line_exit_2([str(model), str(one)], capsys)
    assert str(model / "model.pt") in line and "do not fit" in line
    study["fusion"]["fusion"] = "perceiver"
    (model / STUDY_JSON).write_text(json.dumps(study))
    assert "the card describes study" in _one_line_exit_2([str(model), str(one)], capsys)
    other = tmp_path / "study.toml"
    other.write_text("name = 'another-study'\n")
    assert main(["--study", str(other), "predict", str(demo_run.out / "model"), str(one)]) == 2
    assert "not the study the model was trained under" in capsys.readouterr().err


def test_weights_without_their_study_use_the_default_study_and_say_so(demo_run, tmp_path, capsys) -> None:
    (tmp_path / "bare").mkdir()
    weights = shutil.copyfile(demo_run.out / "model" / "model.pt", tmp_path / "bare" / "model.pt")
    one = _copy_patient(demo_run, _patient(demo_run, "series"), tmp_path / "one")
    code, out, err = _predict([str(weights), str(one), "--json"], capsys)
    assert code == 0 and "no study.json" in err and "built-in default study" in err
    assert json.loads(out)["intended_use"].startswith("unknown")


def test_nothing_identifying_is_printed_or_kept(demo_run, tmp_path, capsys, monkeypatch) -> None:
    """Verbose, on the patient with a rejected file, as a real process (--json) and in this one (the table):
    stdout and stderr carry no identifier, the temporary STATE is gone and the patient folder unchanged."""
    folder = _copy_patient(demo_run, _patient(demo_run, "truncated"), tmp_path / "patient")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    model = str(demo_run.out / "model")
    env = {**os.environ, "TMPDIR": str(scratch), "COLUMNS": "200"}
    process = subprocess.run([sys.executable, "-m", "polyclinic.cli", "-v", "predict", model, str(folder),
                              "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert process.returncode == 0, process.stderr
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["-v", "predict", model, str(folder)]) == 0
    table = capsys.readouterr()
    texts = {name: text.lower() for name, text in (("stdout", process.stdout), ("stderr", process.stderr),
                                                   ("table", table.out), ("table-stderr", table.err))}
    assert "rejected" in texts["table"] and "site predict" in texts["table-stderr"]  # -v logged the run
    assert leaks(texts, {}, identifiers(_truth(demo_run))) == []
    assert not any(contains(t, str(folder).lower()) for t in texts.values())
    assert list(scratch.iterdir()) == []
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
