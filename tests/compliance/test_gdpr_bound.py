"""The residual influence bound of an erased patient: the accountant's epsilon over their rounds only."""

from __future__ import annotations

import math

import pytest
from opacus.accountants import create_accountant

from compliance.gdpr_bound import residual_bound
from privacy.ledger import PrivacyLedger

DELTA = 1e-5


def _ledger(tmp_path, mechanism="rdp"):
    ledger = PrivacyLedger(tmp_path / "ledger.db", mechanism)
    rounds = [("run-a", 1, 1.0, 0.1, 10), ("run-a", 2, 1.0, 0.1, 10), ("run-a", 3, 1.5, 0.1, 20),
              ("run-b", 1, 0.8, 0.05, 30)]
    for run_id, round, sigma, rate, steps in rounds:
        ledger.record(run_id=run_id, round=round, noise_multiplier=sigma, sample_rate=rate, steps=steps,
                      budget_epsilon=1000.0, delta=DELTA)
    return ledger


def _stepped(mechanism, entries):
    """An Opacus accountant stepped one optimizer step at a time, as the PrivacyEngine does."""
    accountant = create_accountant(mechanism)
    for sigma, rate, steps in entries:
        for _ in range(steps):
            accountant.step(noise_multiplier=sigma, sample_rate=rate)
    return accountant.get_epsilon(DELTA)


@pytest.mark.parametrize("mechanism", ["rdp", "prv"])
def test_the_bound_is_the_accountants_epsilon_over_exactly_the_patients_rounds(tmp_path, mechanism):
    ledger = _ledger(tmp_path, mechanism)
    uses = [("run-a", 1, "t1"), ("run-a", 3, "t2"), ("run-b", 1, "t3")]  # not run-a round 2
    rounds, bound = residual_bound(uses, ledger.spends(), DELTA)
    expected = _stepped(mechanism, [(1.0, 0.1, 10), (1.5, 0.1, 20), (0.8, 0.05, 30)])
    assert bound.epsilon == pytest.approx(expected, rel=1e-9)
    assert bound.epsilon < ledger.spent(DELTA)  # tighter than the site's total, which includes round 2
    assert (bound.delta, bound.mechanism, bound.rounds) == (DELTA, mechanism, 3)
    assert [r.epsilon for r in rounds] == pytest.approx(
        [_stepped(mechanism, [e]) for e in [(1.0, 0.1, 10), (1.5, 0.1, 20), (0.8, 0.05, 30)]], rel=1e-9)
    statement = bound.statement()
    assert f"epsilon={expected:.3f}" in statement and f"{math.exp(expected):.3g} times" in statement
    assert "without them" in statement


def test_a_round_with_no_spend_costs_nothing_and_says_so(tmp_path):
    ledger = _ledger(tmp_path)
    rounds, bound = residual_bound([("run-a", 2, "t1"), ("run-c", 1, "t2")], ledger.spends(), DELTA)
    assert rounds[1].epsilon is None  # run-c round 1 was refused: nothing left the site
    assert bound.rounds == 1
    assert bound.epsilon == pytest.approx(_stepped("rdp", [(1.0, 0.1, 10)]), rel=1e-9)


def test_a_patient_never_trained_on_has_no_influence(tmp_path):
    rounds, bound = residual_bound([], _ledger(tmp_path).spends(), DELTA)
    assert rounds == [] and (bound.epsilon, bound.delta, bound.rounds) == (0.0, 0.0, 0)
    assert "nothing that left the site depends on them" in bound.statement()
    assert bound.to_json()["statement"] == bound.statement()
