"""One site's round of (DP-)training, and the local-only and pooled baselines built from it.

A private round, in order: the settings are checked against the budget and the ledger (before the model
is touched); the noise multiplier is the run's (calibrated once per run for the planned rounds x local
epochs on top of everything the ledger holds, reused while the sampling rate stays the same, so a run's
rounds compose into one accountant entry); the ledger must allow the round; a copy of the model is trained
with Opacus, its accountant restored from the ledger; only a round that finished with finite losses and
weights is recorded, and only then are its weights returned. The caller's model is never modified.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from privacy.accounting import (
    Budget,
    Entry,
    ImpossibleSettings,
    calibrate_noise,
    epsilon_spent,
    poisson_plan,
    validate_budget,
)
from privacy.dp_settings import DPSettings
from privacy.dp_steps import NonFiniteLoss, make_optimizer, plain, train_epochs, wrap_private
from privacy.ledger import PrivacyLedger

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundResult:
    weights: dict[str, torch.Tensor]
    """The trained model's ``state_dict`` under the original parameter names (no Opacus wrapper)."""
    examples: int
    epsilon_round: float
    """What this round added to the site's epsilon (inf without DP)."""
    epsilon_spent: float
    """The site's epsilon after this round, all runs together (inf without DP)."""
    epsilon_remaining: float
    mean_loss: float
    """Mean training loss per example; a plain statistic of the data, not covered by the DP guarantee."""
    noise_multiplier: float
    sample_rate: float
    steps: int
    private: bool


@dataclass(frozen=True)
class RoundPlan:
    sample_rate: float
    steps: int
    noise_multiplier: float


def _generator(seed: int | None, run_id: str, round: int, purpose: str,
               device: str = "cpu") -> torch.Generator:
    """A per-(run, round, purpose) generator: reproducible from ``seed``, from OS entropy without one.

    Distinct per round so no two rounds reuse the same noise, which would let it cancel out.
    """
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        digest = hashlib.sha256(f"{seed}\0{run_id}\0{round}\0{purpose}".encode()).digest()
        generator.manual_seed(int.from_bytes(digest[:8], "big") >> 1)
    return generator


def _check_finite(model: nn.Module) -> None:
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise NonFiniteLoss("the weights became NaN or infinite: the round stopped, nothing was recorded or "
                            "returned; lower [dp] learning-rate")


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


class DPTrainer:
    """Trains one site's rounds under its privacy budget; ``ledger`` and ``budget`` are needed with DP on."""

    def __init__(self, settings: DPSettings, *, ledger: PrivacyLedger | None = None,
                 budget: Budget | None = None, run_id: str = "local", seed: int | None = None,
                 device: str = "cpu") -> None:
        if settings.enabled and (ledger is None or budget is None):
            raise ValueError("DP training needs the site's privacy ledger and its (epsilon, delta) budget")
        # The ledger as this accountant sees it: a history recorded with another mechanism is refused.
        self.ledger = PrivacyLedger(ledger.path, settings.accountant) if ledger is not None else None
        self.settings, self.budget = settings, budget
        self.run_id, self.seed, self.device = run_id, seed, torch.device(device)

    def train_round(self, model: nn.Module, dataset: Dataset, *, round: int,
                    proximal_mu: float = 0.0) -> RoundResult:
        """Train a copy of ``model`` for ``local_epochs`` on ``dataset``; BudgetExceeded, ImpossibleSettings
        or NonFiniteLoss leave the ledger and ``model`` exactly as they were. ``proximal_mu`` (FedProx) pulls
        the weights towards ``model``'s, without touching the privacy accounting."""
        if self.settings.enabled:
            return self._private_round(model, dataset, round, proximal_mu)
        return self._plain_round(model, dataset, round, proximal_mu)

    def _plain_round(self, model: nn.Module, dataset: Dataset, round: int, proximal_mu: float) -> RoundResult:
        if len(dataset) == 0:
            raise ImpossibleSettings("dp.empty-dataset", "there are no training examples to train on")
        work = copy.deepcopy(model).to(self.device).train()
        trainable = plain(work, dataset, self.settings, _generator(self.seed, self.run_id, round, "sampling"),
                          proximal_mu=proximal_mu)
        mean_loss = train_epochs(trainable, self.settings.local_epochs, self.device)
        _check_finite(work)
        return RoundResult(_weights(work), len(dataset), math.inf, math.inf, 0.0, mean_loss, 0.0,
                           min(self.settings.batch_size / len(dataset), 1.0),
                           self.settings.local_epochs * len(trainable.loader), private=False)

    def _noise_multiplier(self, sample_rate: float, steps_per_round: int,
                          history: Sequence[Entry]) -> float:
        """The run's noise multiplier; calibrated for the rest of the run's plan when the run starts or its
        sampling rate changes (e.g. patients withdrew consent)."""
        spends = self.ledger.spends(self.run_id)
        if spends and spends[-1].sample_rate == sample_rate:
            return spends[-1].noise_multiplier
        rounds_left = max(self.settings.rounds - len({s.round for s in spends}), 1)
        return calibrate_noise(self.budget.epsilon, self.budget.delta, sample_rate,
                               rounds_left * steps_per_round, self.settings.accountant, history)

    def plan_round(self, n_examples: int) -> RoundPlan:
        """The next private round for ``n_examples`` after the checks training makes first: raises
        ImpossibleSettings or BudgetExceeded exactly as ``train_round`` would, and spends nothing."""
        settings, budget = self.settings, self.budget
        history = self.ledger.accountant().history
        validate_budget(budget_epsilon=budget.epsilon, delta=budget.delta, n_examples=n_examples,
                        batch_size=settings.batch_size, accountant=settings.accountant,
                        history=history, strict=True)
        sample_rate, steps_per_epoch = poisson_plan(n_examples, settings.batch_size)
        steps = settings.local_epochs * steps_per_epoch
        sigma = self._noise_multiplier(sample_rate, steps, history)
        self.ledger.check_next(sigma, sample_rate, steps, budget.epsilon, budget.delta)
        return RoundPlan(sample_rate, steps, sigma)

    def _private_round(self, model: nn.Module, dataset: Dataset, round: int,
                       proximal_mu: float) -> RoundResult:
        settings, budget, n = self.settings, self.budget, len(dataset)
        sigma = self.plan_round(n).noise_multiplier
        accountant = self.ledger.accountant()
        before = epsilon_spent(accountant, budget.delta)

        work = copy.deepcopy(model).to(self.device).train()
        loader = DataLoader(dataset, batch_size=settings.batch_size,
                            generator=_generator(self.seed, self.run_id, round, "sampling"))
        trainable, engine = wrap_private(
            work, make_optimizer(work, settings, proximal_mu=proximal_mu), loader, settings=settings,
            noise_multiplier=sigma,
            accountant_state=accountant.state_dict(),
            noise_generator=_generator(self.seed, self.run_id, round, "noise", self.device.type))
        mean_loss = train_epochs(trainable, settings.local_epochs, self.device)
        _check_finite(work)
        taken = sum(s for *_, s in engine.accountant.history) - sum(s for *_, s in accountant.history)
        spend = self.ledger.record(run_id=self.run_id, round=round, noise_multiplier=sigma,
                                   sample_rate=engine.accountant.history[-1][1], steps=taken,
                                   budget_epsilon=budget.epsilon, delta=budget.delta)
        logger.info("round %d: %d examples, noise multiplier %.3f, %d steps, epsilon %.3f of %g",
                    round, n, sigma, taken, spend.epsilon_after, budget.epsilon)
        return RoundResult(_weights(work), n, spend.epsilon_after - before, spend.epsilon_after,
                           max(budget.epsilon - spend.epsilon_after, 0.0), mean_loss, sigma,
                           spend.sample_rate, taken, private=True)


def train_local(model: nn.Module, dataset: Dataset, settings: DPSettings, *,
                ledger: PrivacyLedger | None = None, budget: Budget | None = None, run_id: str = "local",
                seed: int | None = None, device: str = "cpu") -> list[RoundResult]:
    """One site alone: ``settings.rounds`` rounds on its own data; the last result holds the final weights."""
    trainer = DPTrainer(settings, ledger=ledger, budget=budget, run_id=run_id, seed=seed, device=device)
    current, results = copy.deepcopy(model), []
    for round in range(1, settings.rounds + 1):
        results.append(trainer.train_round(current, dataset, round=round))
        current.load_state_dict(results[-1].weights)
    return results


def train_pooled(model: nn.Module, datasets: Sequence[Dataset], settings: DPSettings,
                 **kwargs: Any) -> list[RoundResult]:
    """The centralised baseline: every site's data in one place, trained as one site (same code, same
    budget rules; ``delta`` must then be below 1/(all examples))."""
    return train_local(model, ConcatDataset(list(datasets)), settings, **kwargs)
