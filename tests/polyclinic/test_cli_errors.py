"""The CLI contract for bad input: exit 2 and one line on stderr that names the problem."""

import json
import subprocess
import sys

import pytest

from polyclinic.cli import main


def test_missing_site_folder_exits_2_with_one_line(tmp_path, capsys):
    assert main(["site", "check", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such site folder" in err[0]


def test_broken_study_file_exits_2_naming_the_key(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text("[genomics]\npatient-colum = 'x'\n")
    (tmp_path / "site").mkdir()
    assert main(["--study", str(study), "site", "check", str(tmp_path / "site")]) == 2
    assert "genomics.patient-colum" in capsys.readouterr().err


def test_broken_site_toml_exits_2(tmp_path, capsys):
    (tmp_path / "site.toml").write_text("[consent]\npolicy = 'always'\n")
    assert main(["site", "check", str(tmp_path)]) == 2
    assert "consent.policy" in capsys.readouterr().err


def test_usage_errors_exit_2():
    result = subprocess.run([sys.executable, "-m", "polyclinic.cli", "synth", "out", "--sites", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "must be at least 1" in result.stderr


@pytest.mark.parametrize("command", [["site", "check"], ["site", "prepare"]])
def test_empty_site_is_a_clean_report_not_a_crash(tmp_path, capsys, command):
    assert main([*command, str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and '"discovered": 0' in out
    assert "no site.toml" in err


def test_check_json_is_one_object_with_the_stewards_view(federation, tmp_path, capsys):
    root, truth = federation
    site = truth.sites[1]
    assert main(["site", "check", str(root / site.id), "--state", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert out.count("\n") == 1 and report["site_id"] == site.id
    assert report["patients"]["discovered"] == len(site.patients)
    assert report["modalities"]["genomics"]["rejected"] == {"genomics.duplicate-sample": 1}
    assert {r["code"] for r in report["rejections"]} >= {"imaging.not-dicom", "imaging.no-pixels"}


def test_repeated_runs_in_one_process_keep_one_stderr_handler(tmp_path):
    import logging

    for _ in range(3):
        main(["site", "check", str(tmp_path / "nowhere")])
    ours = [h for h in logging.getLogger().handlers if getattr(h, "polyclinic_stderr", False)]
    assert len(ours) == 1
