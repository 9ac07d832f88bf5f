"""Art. 15 and Art. 17 at a synthetic hospital: the site run honours erasures, the CLI answers requests.

The session's federation is shared and read-only: every test writes only to its own STATE (a copy of
one prepared state), never into a site folder.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil

import pytest
from opacus.accountants import create_accountant

from client.cohort import CohortManifest
from client.site import Site
from compliance.audit import AuditTrail
from compliance.audit_verify import verify
from compliance.gdpr import ERASED, RequestRegister, UsageRegister, erased
from compliance.gdpr_requests import Holdings, serve_erasure
from polyclinic import cli
from polyclinic.study import default_study
from privacy.ledger import PrivacyLedger
from privacy.pseudonym import Pseudonymiser

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
DELTA = 1e-5


def gdpr_main(*argv: str) -> int:
    """``polyclinic gdpr ...`` through the real command line."""
    return cli.main(list(argv))


@pytest.fixture(scope="module")
def prepared(federation, tmp_path_factory):
    """Site 0 (opt-in) prepared once; its first patient has records, a CT series and a genomic sample."""
    root, truth = federation
    site_truth = truth.sites[0]
    patient = site_truth.patients[0]
    assert (patient.consent, patient.imaging) == ("permit", "series") and patient.sample_id
    state = tmp_path_factory.mktemp("prepared") / "state"
    Site(root / site_truth.id, default_study(), state, now=NOW).run(build_cache=True)
    return root / site_truth.id, site_truth, patient, state


@pytest.fixture
def site(prepared, tmp_path):
    folder, site_truth, patient, state = prepared
    shutil.copytree(state, tmp_path / "state")
    return folder, site_truth, patient, tmp_path / "state"


def _entry(state, pseudonym):
    return next((p for p in CohortManifest.load(state).patients if p.pseudonym == pseudonym), None)


def test_an_erased_patient_is_excluded_from_the_next_run_and_their_cache_pruned(site):
    folder, site_truth, patient, state = site
    pseudonym = Pseudonymiser.for_state(state).patient(patient.mrn)
    entry = _entry(state, pseudonym)
    assert entry is not None and set(entry.entries) == {"records", "imaging", "genomics"}
    before = Site(folder, default_study(), state, now=NOW).run(build_cache=True)
    serve_erasure(state, site_truth.id, pseudonym, Holdings(), DELTA)
    after = Site(folder, default_study(), state, now=NOW).run(build_cache=True)  # a new Site: a restart
    assert after.patients.consent_excluded[ERASED] == 1
    assert after.patients.included == before.patients.included - 1
    assert after.modalities["imaging"].accepted == before.modalities["imaging"].accepted - 1
    assert after.cache.pruned == 3 and after.cache.written == 0
    assert _entry(state, pseudonym) is None
    cache = Site(folder, default_study(), state).cache
    assert not any(cache.has(key) for key in entry.entries.values())
    check = Site(folder, default_study(), state, now=NOW).run(build_cache=False)
    assert check.patients.consent_excluded[ERASED] == 1 and check.patients.included == after.patients.included


def test_erase_on_the_command_line_takes_effect_at_once(site, capsys):
    folder, site_truth, patient, state = site
    pseudonym = Pseudonymiser.for_state(state).patient(patient.mrn)
    keys = _entry(state, pseudonym).entries.values()
    assert gdpr_main("gdpr", "erase", str(folder), f" {patient.mrn} ", "--state", str(state), "--json") == 0
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert (answer["request"], answer["patient_id"], answer["pseudonym"]) == ("erase", patient.mrn, pseudonym)
    assert answer["found_in"] == ["records", "imaging", "genomics"] and answer["consent"] == ERASED
    assert answer["erased"] and answer["cache_removed"] == 3 and answer["cached"] == []
    assert answer["residual"]["rounds"] == 0 and err == ""
    assert erased(state) == {pseudonym} and _entry(state, pseudonym) is None
    cache = Site(folder, default_study(), state).cache
    assert not any(cache.has(key) for key in keys)
    entries = AuditTrail.for_state(state, actor=f"site:{site_truth.id}").entries()
    assert [json.loads(e.details) for e in entries if e.event == "gdpr.erasure"] == [
        {"patient": pseudonym, "items": 3}]
    assert verify(state / "audit.db").ok


def test_access_lists_the_recorded_rounds_and_the_residual_bound(site, capsys):
    folder, site_truth, patient, state = site
    pseudonym = Pseudonymiser.for_state(state).patient(patient.mrn)
    other = Pseudonymiser.for_state(state).patient(site_truth.patients[1].mrn)
    usage, ledger = UsageRegister.for_state(state), PrivacyLedger.for_state(state, "rdp")
    for run_id, round, patients, sigma in (("run-a", 1, [pseudonym, other], 1.0), ("run-a", 2, [other], 1.0),
                                           ("run-b", 1, [pseudonym], 1.3)):
        usage.record(run_id, round, patients)
        ledger.record(run_id=run_id, round=round, noise_multiplier=sigma, sample_rate=0.2, steps=5,
                      budget_epsilon=100.0, delta=DELTA)
    assert gdpr_main("gdpr", "access", str(folder), patient.mrn, "--state", str(state), "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["round"]) for r in answer["rounds"]] == [("run-a", 1), ("run-b", 1)]
    accountant = create_accountant("rdp")
    for sigma in (1.0, 1.3):
        for _ in range(5):
            accountant.step(noise_multiplier=sigma, sample_rate=0.2)
    assert answer["residual"]["epsilon"] == pytest.approx(accountant.get_epsilon(DELTA), rel=1e-9)
    assert answer["residual"]["rounds"] == 2 and answer["residual"]["mechanism"] == "rdp"
    assert answer["consent"] == "consent.permitted" and not answer["erased"]
    assert answer["found_in"] == answer["cached"] == ["records", "imaging", "genomics"]
    assert [r.kind for r in RequestRegister.for_state(state).requests(pseudonym)] == ["access"]
    assert gdpr_main("gdpr", "access", str(folder), patient.mrn, "--state", str(state)) == 0
    text = capsys.readouterr().out
    assert f"patient {patient.mrn}" in text and "run run-b round 1" in text and "e^" in text


def test_an_erasure_before_the_data_arrives_still_holds(prepared, tmp_path, capsys):
    folder, _, patient, _ = prepared
    empty, state = tmp_path / "empty" / folder.name, tmp_path / "fresh-state"
    empty.mkdir(parents=True)
    shutil.copy(folder / "site.toml", empty / "site.toml")
    assert gdpr_main("gdpr", "erase", str(empty), patient.mrn, "--state", str(state)) == 0
    err = capsys.readouterr().err
    assert "no data of this patient" in err and "no site run has used the state" in err
    assert patient.mrn not in err
    report = Site(folder, default_study(), state, now=NOW).run(build_cache=False)  # the data arrives
    assert report.patients.consent_excluded[ERASED] == 1


def test_bad_input_exits_2_with_one_line(site, capsys):
    folder, _, _, state = site
    assert gdpr_main("gdpr", "access", str(folder), "  ", "--state", str(state)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PATIENT_ID is empty" in err
    assert RequestRegister.for_state(state).requests() == []


def _token(text: str, identifier: str) -> bool:
    return re.search(rf"(?<![0-9a-z]){re.escape(identifier.lower())}(?![0-9a-z])", text) is not None


def test_requests_leave_nothing_identifying_in_state(site, capsys):
    folder, site_truth, patient, state = site
    for command in ("access", "erase", "access"):
        assert gdpr_main("gdpr", command, str(folder), patient.mrn, "--state", str(state), "--json") == 0
        out, err = capsys.readouterr()
        assert patient.mrn in out and not any(_token(err.lower(), i) for i in patient.identifiers())
    assert (state / "gdpr.db").is_file() and (state / "audit.db").is_file()
    identifiers = {i for p in site_truth.patients for i in p.identifiers()}
    for path in (p for p in state.rglob("*") if p.is_file() and p.parent.name != "keys"):
        raw = path.read_bytes().decode("latin-1").lower()
        if path.suffix == ".pt":  # binary tensors: only long identifiers are meaningful to search for
            assert not [i for i in identifiers if len(i) >= 8 and i.lower() in raw], path
        else:
            assert not [i for i in identifiers if _token(raw, i)], path
