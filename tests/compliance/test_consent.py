"""Consent decisions from R4 and R5 Consents shaped like the HL7 spec's official examples."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fhir.resources.consent import Consent as R5Consent
from fhir.resources.R4B.consent import Consent as R4BConsent

from compliance.consent import CODES, ConsentDecision, decide

DATA = Path(__file__).parents[1] / "data" / "fhir" / "consents"
AT = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def consent(name: str):
    data = json.loads((DATA / f"{name}.json").read_text())
    return (R4BConsent if name.startswith("r4") else R5Consent).model_validate(data)


NONE = ("consent.no-permit", "consent.not-objected")  # the consent says nothing about research now
PERMIT = ("consent.permitted", "consent.permitted")
DENY = ("consent.denied", "consent.denied")
EXAMPLES = {
    "r4-basic": NONE,  # a privacy consent that expired in 2016
    "r4-research-permit": PERMIT,
    "r4-out": DENY,  # OPTOUT, root provision without a type
    "r4-nested-deny-2024": PERMIT,  # the nested deny ended in 2024
    "r4-inactive": NONE,  # withdrawn
    "r4-treatment-deny": NONE,  # refuses a treatment, not research
    "r5-research-permit": PERMIT,
    "r5-deny-research": DENY,  # the decision applies to the top-level provision
    "r5-deny-except-research": PERMIT,  # a nested provision is an exception
    "r5-research-except-2024": PERMIT,  # the exception ended in 2024
    "r5-expired": NONE,
    "r5-actor-restricted-permit": NONE,  # a permit for someone else
}


def test_every_fixture_has_an_expectation():
    assert {p.stem for p in DATA.glob("*.json")} == set(EXAMPLES)


@pytest.mark.parametrize(("name", "codes"), EXAMPLES.items())
def test_official_example_shapes(name, codes):
    for policy, code in zip(("opt-in", "opt-out"), codes, strict=True):
        decision = decide([consent(name)], policy, AT)
        assert decision.code == code
        assert decision.allowed is (code in ("consent.permitted", "consent.not-objected"))
        assert decision.reason.startswith(CODES[code])


def test_nested_provision_period_is_honoured():
    nested = [consent("r4-nested-deny-2024")]
    during = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    assert decide(nested, "opt-in", during).code == "consent.denied"
    assert decide(nested, "opt-in", dt.datetime(2024, 12, 31, 23, tzinfo=dt.UTC)).code == "consent.denied"
    assert decide(nested, "opt-in", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)).code == "consent.permitted"


def test_r5_nested_exception_period_is_honoured():
    consents = [consent("r5-research-except-2024")]
    assert decide(consents, "opt-in", dt.datetime(2024, 7, 1, tzinfo=dt.UTC)).code == "consent.denied"
    assert decide(consents, "opt-in", dt.datetime(2023, 7, 1, tzinfo=dt.UTC)).code == "consent.permitted"


def test_research_permit_period_start():
    permit = [consent("r4-research-permit")]
    assert decide(permit, "opt-in", dt.datetime(2019, 12, 31, tzinfo=dt.UTC)).code == "consent.no-permit"
    assert decide(permit, "opt-in", dt.datetime(2020, 1, 1)).code == "consent.permitted"  # naive means UTC


def test_any_deny_wins_over_permits():
    both = [consent("r5-research-permit"), consent("r4-research-permit"), consent("r4-out")]
    decision = decide(both, "opt-out", AT)
    assert decision == ConsentDecision(False, "consent.denied", decision.reason)
    assert "(3 of 3 consents" in decision.reason


def test_no_consents():
    assert decide([], "opt-in", AT).code == "consent.no-permit"
    assert decide([], "opt-out", AT).code == "consent.not-objected"
    assert decide([], "opt-out", AT).allowed and not decide([], "opt-in", AT).allowed


def test_withdrawal_by_status_change():
    data = json.loads((DATA / "r5-research-permit.json").read_text())
    assert decide([R5Consent.model_validate(data)], "opt-in", AT).allowed
    withdrawn = R5Consent.model_validate({**data, "status": "inactive"})
    assert decide([withdrawn], "opt-in", AT).code == "consent.no-permit"


def test_unknown_policy_is_an_error_naming_the_options():
    with pytest.raises(ValueError, match="opt-in, opt-out"):
        decide([], "maybe", AT)  # type: ignore[arg-type]
