import pytest
import torch
from opacus.accountants import create_accountant
from opacus.data_loader import DPDataLoader
from torch.utils.data import DataLoader, TensorDataset

from privacy.accounting import (
    MAX_NOISE_MULTIPLIER,
    REASONS,
    ImpossibleSettings,
    append_entry,
    calibrate_noise,
    epsilon_of,
    poisson_plan,
    validate_budget,
)

TOLERANCE = 0.01


@pytest.mark.parametrize(("n", "batch"), [(400, 32), (93 * 8, 8), (1000, 64), (10, 10), (123 * 5, 5)])
def test_poisson_plan_is_what_make_private_accounts(n, batch):
    loader = DPDataLoader.from_data_loader(DataLoader(TensorDataset(torch.zeros(n)), batch_size=batch))
    assert poisson_plan(n, batch) == (1 / len(loader), len(loader))


def test_append_entry_merges_like_an_accountant_stepped_directly():
    direct = create_accountant("rdp")
    history = []
    for sigma, rate, steps in [(1.0, 0.1, 3), (1.0, 0.1, 2), (1.5, 0.1, 4), (1.0, 0.1, 1)]:
        for _ in range(steps):
            direct.step(noise_multiplier=sigma, sample_rate=rate)
        history = append_entry(history, (sigma, rate, steps))
    assert history == direct.history == [(1.0, 0.1, 5), (1.5, 0.1, 4), (1.0, 0.1, 1)]


def test_calibration_meets_the_budget_for_the_planned_training_prv():
    rate, steps = poisson_plan(800, 64)
    planned = 5 * 2 * steps  # rounds x local epochs x steps per epoch
    sigma = calibrate_noise(3.0, 1e-5, rate, planned, "prv")
    epsilon = epsilon_of([(sigma, rate, planned)], "prv", 1e-5)
    assert 3.0 - TOLERANCE - 1e-9 <= epsilon <= 3.0


def test_calibration_on_top_of_a_history_leaves_room_for_the_plan_only():
    history = [(1.2, 0.05, 200)]
    spent = epsilon_of(history, "rdp", 1e-5)
    sigma = calibrate_noise(6.0, 1e-5, 0.08, 100, "rdp", history, epsilon_tolerance=0.05)
    total = epsilon_of(append_entry(history, (sigma, 0.08, 100)), "rdp", 1e-5)
    assert spent < 6.0 - 1
    assert 6.0 - 0.05 - 1e-9 <= total <= 6.0
    # the same plan without the history would need less noise: the past is paid for
    assert calibrate_noise(6.0, 1e-5, 0.08, 100, "rdp") < sigma


def test_a_plan_too_long_for_any_reasonable_noise_is_refused():
    with pytest.raises(ImpossibleSettings, match="planned 100000 steps") as raised:
        calibrate_noise(0.05, 1e-5, 0.5, 100_000, "rdp")
    assert raised.value.code == "dp.budget-too-small"
    assert str(MAX_NOISE_MULTIPLIER).rstrip("0").rstrip(".") in str(raised.value)


def _codes(**kwargs):
    args = {"budget_epsilon": 8.0, "delta": 1e-5, "n_examples": 1000, "batch_size": 64, "accountant": "rdp"}
    return [p.code for p in validate_budget(**{**args, **kwargs})]


def test_sound_settings_have_no_problems():
    assert _codes() == []


@pytest.mark.parametrize(("change", "code"), [
    ({"n_examples": 0}, "dp.empty-dataset"),
    ({"batch_size": 2000}, "dp.batch-larger-than-dataset"),
    ({"delta": 1e-3}, "dp.delta-too-large"),
    ({"delta": 1e-2, "n_examples": 100}, "dp.delta-too-large"),
    ({"budget_epsilon": 1e-4, "batch_size": 500}, "dp.budget-too-small"),
    ({"history": [(0.5, 0.5, 1000)]}, "dp.budget-spent"),
])
def test_impossible_settings_are_named(change, code):
    assert _codes(**change) == [code]
    assert code in REASONS


def test_a_budget_for_one_step_but_not_the_plan_is_refused_before_training():
    problems = validate_budget(budget_epsilon=0.3, delta=1e-5, n_examples=1000, batch_size=500,
                               planned_steps=50_000, accountant="rdp")
    assert [p.code for p in problems] == ["dp.budget-too-small"]
    assert "planned 50000 steps" in str(problems[0])


def test_strict_raises_every_problem_with_the_fix():
    with pytest.raises(ImpossibleSettings) as raised:
        validate_budget(budget_epsilon=8.0, delta=0.5, n_examples=10, batch_size=20, strict=True)
    message = str(raised.value)
    assert raised.value.code == "dp.batch-larger-than-dataset"
    assert "at most 10" in message and "delta 0.5" in message and "site.toml" in message
