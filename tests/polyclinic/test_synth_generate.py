"""The synthetic federation's layout, determinism, configuration and file names."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from polyclinic.synth import GROUND_TRUTH, GroundTruth, generate
from polyclinic.synth.fhir_writer import read_resources
from polyclinic.synth.profiles import site_id

SITES, PATIENTS = 3, 12


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    out = tmp_path_factory.mktemp("synth")
    return out, generate(out, sites=SITES, patients=PATIENTS, seed=0)


def test_same_seed_gives_identical_files_and_another_seed_differs(federation, tmp_path):
    out, _ = federation
    again = tmp_path / "again"
    generate(again, sites=SITES, patients=PATIENTS, seed=0)
    assert _hashes(again) == _hashes(out)
    other = tmp_path / "other"
    generate(other, sites=SITES, patients=PATIENTS, seed=1)
    first, second = _hashes(out), _hashes(other)
    same_name = set(first) & set(second)
    fixed = {GROUND_TRUTH, "site.toml", "notes.txt", "expression.csv", "expression.tsv"}
    assert all(k.rsplit("/", 1)[-1] in fixed or k.endswith((".ndjson", ".ndjson.gz")) for k in same_name), (
        "random file names should change with the seed"
    )
    unchanged = {k.rsplit("/", 1)[-1] for k in same_name if first[k] == second[k]}
    assert unchanged == {"site.toml", "notes.txt"}


def test_site_folders_and_ground_truth_outside_them(federation):
    out, truth = federation
    assert sorted(p.name for p in out.iterdir()) == [GROUND_TRUTH, "hospital-a", "hospital-b", "hospital-c"]
    assert GroundTruth.load(out / GROUND_TRUTH) == truth
    for site in ("hospital-a", "hospital-b"):
        assert {p.name for p in (out / site).iterdir()} == {"imaging", "records", "genomics", "site.toml"}
    assert {p.name for p in (out / "hospital-c").iterdir()} == {"imaging", "records", "site.toml"}
    assert [len(s.patients) for s in truth.sites] == [PATIENTS] * SITES


def test_site_toml_is_exactly_the_contract(federation):
    out, _ = federation
    assert (out / "hospital-a" / "site.toml").read_text() == (
        '[site]\nid = "hospital-a"\n[consent]\npolicy = "opt-in"\n[privacy]\nepsilon = 8.0\ndelta = 1e-5\n'
    )
    for site, policy in (("hospital-b", "opt-out"), ("hospital-c", "opt-out")):
        config = tomllib.loads((out / site / "site.toml").read_text())
        assert config == {
            "site": {"id": site},
            "consent": {"policy": policy},
            "privacy": {"epsilon": 8.0, "delta": 1e-5},
        }


def test_no_identifier_in_any_file_or_folder_name(federation):
    out, truth = federation
    for site in truth.sites:
        names = [p.relative_to(out / site.id).as_posix().lower() for p in (out / site.id).rglob("*")]
        assert len(names) > PATIENTS
        for patient in site.patients:
            for value in patient.identifiers():
                assert not [n for n in names if value.lower() in n], (site.id, "an identifier in a path")


def test_bad_files_exist_where_the_ground_truth_says(federation):
    out, truth = federation
    for site in truth.sites:
        kinds = sorted(b.kind for b in site.bad_files)
        expected = ["not-dicom", "truncated", "unknown-unit", "unused-resource-type"] + (
            ["no-pixels"] if site.profile == "B" else []
        )
        assert kinds == sorted(expected)
        for bad in site.bad_files:
            assert (out / site.id / bad.path).is_file()
            if bad.modality == "records":  # the resource sits in the file the truth names
                name = bad.path.split("/")[-1]
                held = {f"{r['resourceType']}/{r['id']}"
                        for file, r in read_resources(out / site.id / "records") if file == name}
                assert bad.fragment in held
        truncated = [p for p in site.patients if p.imaging == "truncated"]
        assert len(truncated) == 1 and truncated[0].imaging_files == []


def test_sites_cycle_through_the_profiles(tmp_path):
    truth = generate(tmp_path, sites=4, patients=3, seed=5)
    assert [s.profile for s in truth.sites] == ["A", "B", "C", "A"]
    assert [s.id for s in truth.sites] == ["hospital-a", "hospital-b", "hospital-c", "hospital-d"]
    assert [site_id(i) for i in (25, 26, 27)] == ["hospital-z", "hospital-aa", "hospital-ab"]
    assert tomllib.loads((tmp_path / "hospital-d" / "site.toml").read_text())["consent"]["policy"] == "opt-in"


def test_refuses_to_overwrite_a_site_folder_and_bad_arguments(federation, tmp_path):
    out, _ = federation
    with pytest.raises(FileExistsError, match="not empty"):
        generate(out, sites=1, patients=PATIENTS)
    with pytest.raises(ValueError, match="sites"):
        generate(tmp_path / "x", sites=0)
    with pytest.raises(ValueError, match="patients"):
        generate(tmp_path / "y", patients=1)
