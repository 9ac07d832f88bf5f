"""Privacy accounting around Opacus: histories, noise calibration and settings that can never work.

The mathematics stays in Opacus (``create_accountant``, ``get_noise_multiplier``); this module only
decides *which* history to account: the ledger's past spends plus the training still planned. A history is
what Opacus's accountants keep in ``state_dict()["history"]``: ``(noise_multiplier, sample_rate, steps)``.

Calibration. With nothing spent yet, ``opacus.accountants.utils.get_noise_multiplier`` finds sigma for the
planned steps. With a history it cannot help (it accounts one entry only), so :func:`calibrate_noise` runs
the same search (double sigma until under the target, then bisect to within ``epsilon_tolerance`` below it)
on an Opacus accountant restored from the history plus ``(sigma, q, planned_steps)``. Either way the
answer is the upper end of the bracket, so the planned training never ends above the budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from opacus.accountants import IAccountant, create_accountant
from opacus.accountants.utils import get_noise_multiplier

Entry = tuple[float, float, int]
MAX_NOISE_MULTIPLIER = 100.0
"""Past this, the update is noise: a budget needing more is treated as impossible, not as a setting."""

REASONS: dict[str, str] = {
    "dp.empty-dataset": "there are no training examples",
    "dp.batch-larger-than-dataset": "the expected batch is larger than the data, so sampling cannot amplify",
    "dp.delta-too-large": "delta is not below 1/n, which allows publishing one whole record",
    "dp.budget-spent": "the ledger already records the whole epsilon budget as spent",
    "dp.budget-too-small": "the budget cannot pay for the training even with noise multiplier 100",
}


class Budget(Protocol):
    """A site's (epsilon, delta); ``client.site_config.PrivacySection`` is one."""

    @property
    def epsilon(self) -> float: ...

    @property
    def delta(self) -> float: ...


class ImpossibleSettings(ValueError):
    """Settings under which no DP training can happen; ``code`` is one of :data:`REASONS`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def append_entry(history: Sequence[Entry], entry: Entry) -> list[Entry]:
    """``history`` followed by ``entry``, merged the way ``IAccountant.step`` merges equal consecutive steps,
    so a history rebuilt from records gives the very epsilon of an accountant stepped directly."""
    merged = list(history)
    if merged and merged[-1][:2] == entry[:2]:
        sigma, rate, steps = merged.pop()
        entry = (sigma, rate, steps + entry[2])
    merged.append(entry)
    return merged


def restore_accountant(state: Mapping[str, Any], mechanism: str) -> IAccountant:
    """A ``mechanism`` accountant loaded from ``state``; Opacus raises ValueError for a foreign mechanism."""
    accountant = create_accountant(mechanism)
    accountant.load_state_dict(dict(state))
    return accountant


def epsilon_spent(accountant: IAccountant, delta: float) -> float:
    """The accountant's epsilon; zero when nothing was spent (PRV cannot evaluate an empty history)."""
    return float(accountant.get_epsilon(delta)) if accountant.history else 0.0


def epsilon_of(history: Sequence[Entry], mechanism: str, delta: float) -> float:
    state = {"history": list(history), "mechanism": mechanism}
    return epsilon_spent(restore_accountant(state, mechanism), delta)


def poisson_plan(n_examples: int, batch_size: int) -> tuple[float, int]:
    """(sample rate the accountant records, steps per epoch), derived exactly as ``make_private`` does.

    Opacus takes ``1/len(loader)`` of a ``batch_size`` loader as the sampling rate, runs ``int(1/rate)``
    batches per epoch, and accounts ``1/len(poisson_loader)``; floating point makes that one batch fewer
    (and a slightly larger rate) for some sizes (93 batches become 92), so it is mirrored, not simplified.
    """
    steps = int(1 / (1 / math.ceil(n_examples / batch_size)))
    return 1 / steps, steps


def _search_sigma(epsilon_at: Callable[[float], float], target: float, tolerance: float) -> float:
    """``get_noise_multiplier``'s search over any history; the caller checked MAX_NOISE_MULTIPLIER fits."""
    low, high, eps_high = 0.0, 10.0, math.inf
    while eps_high > target:
        high = min(2 * high, MAX_NOISE_MULTIPLIER)
        eps_high = epsilon_at(high)
    while target - eps_high > tolerance and high - low > 1e-6:
        middle = (low + high) / 2
        eps = epsilon_at(middle)
        if eps < target:
            high, eps_high = middle, eps
        else:
            low = middle
    return high


def _too_small(budget_epsilon: float, spent: float, sample_rate: float, steps: int) -> ImpossibleSettings:
    what = "even one step" if steps == 1 else f"the planned {steps} steps"
    return ImpossibleSettings(
        "dp.budget-too-small",
        f"an epsilon budget of {budget_epsilon:g} ({budget_epsilon - spent:.3g} left) cannot pay for {what} "
        f"at sample rate {sample_rate:.3g}, even with noise multiplier {MAX_NOISE_MULTIPLIER:g}: plan fewer "
        "[dp] rounds or local-epochs, a smaller batch-size, or ask the data protection officer for a larger "
        "[privacy] epsilon in site.toml",
    )


def calibrate_noise(
    budget_epsilon: float,
    delta: float,
    sample_rate: float,
    planned_steps: int,
    accountant: str = "prv",
    already_spent_history: Sequence[Entry] = (),
    epsilon_tolerance: float = 0.01,
) -> float:
    """The noise multiplier at which ``already_spent_history`` plus ``planned_steps`` steps at
    ``sample_rate`` ends within ``epsilon_tolerance`` below ``budget_epsilon`` (never above it)."""
    history = list(already_spent_history)

    def epsilon_at(sigma: float) -> float:
        return epsilon_of(append_entry(history, (sigma, sample_rate, planned_steps)), accountant, delta)

    if epsilon_at(MAX_NOISE_MULTIPLIER) > budget_epsilon:
        raise _too_small(budget_epsilon, epsilon_of(history, accountant, delta), sample_rate, planned_steps)
    if not history:
        return float(get_noise_multiplier(
            target_epsilon=budget_epsilon, target_delta=delta, sample_rate=sample_rate,
            steps=planned_steps, accountant=accountant, epsilon_tolerance=epsilon_tolerance,
        ))
    return _search_sigma(epsilon_at, budget_epsilon, epsilon_tolerance)


def validate_budget(
    *,
    budget_epsilon: float,
    delta: float,
    n_examples: int,
    batch_size: int,
    planned_steps: int = 1,
    accountant: str = "prv",
    history: Sequence[Entry] = (),
    strict: bool = False,
) -> list[ImpossibleSettings]:
    """Every reason DP training of ``n_examples`` cannot happen under this budget; ``strict`` raises them
    (all messages in one error, the first one's code) instead of returning them."""
    n = n_examples
    problems: list[ImpossibleSettings] = []
    if n <= 0:
        problems.append(ImpossibleSettings(
            "dp.empty-dataset", "there are no training examples: `polyclinic site check` lists what was "
            "rejected or excluded by consent, and why"))
    else:
        if batch_size > n:
            problems.append(ImpossibleSettings(
                "dp.batch-larger-than-dataset",
                f"batch size {batch_size} is larger than the {n} training examples: every example would be "
                f"in every batch and sampling would not amplify privacy; set [dp] batch-size to at most {n} "
                f"(about n/10 = {max(1, n // 10)} is typical)"))
        if delta >= 1 / n:
            problems.append(ImpossibleSettings(
                "dp.delta-too-large",
                f"delta {delta:g} is not below 1/n = {1 / n:.3g} for {n} training examples, which allows "
                f"publishing one whole record; set [privacy] delta in site.toml below that, e.g. "
                f"{10 ** math.floor(math.log10(1 / (10 * n))):g}"))
    if not problems:
        sample_rate, _ = poisson_plan(n, batch_size)
        spent = epsilon_of(history, accountant, delta)
        if spent >= budget_epsilon:
            problems.append(ImpossibleSettings(
                "dp.budget-spent",
                f"the privacy budget is spent: the ledger records epsilon {spent:.3f} of {budget_epsilon:g} "
                f"(delta {delta:g}); the site cannot train again unless its data protection officer raises "
                "[privacy] epsilon in site.toml"))
        else:
            for steps in dict.fromkeys((1, planned_steps)):
                worst = append_entry(history, (MAX_NOISE_MULTIPLIER, sample_rate, steps))
                if epsilon_of(worst, accountant, delta) > budget_epsilon:
                    problems.append(_too_small(budget_epsilon, spent, sample_rate, steps))
                    break
    if strict and problems:
        raise ImpossibleSettings(problems[0].code, "; ".join(map(str, problems)))
    return problems
