import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from client.site_config import PrivacySection
from privacy.accounting import ImpossibleSettings
from privacy.dp_settings import DPSettings
from privacy.dp_steps import NonFiniteLoss, train_epochs, train_step, wrap_private
from privacy.dp_training import DPTrainer, train_local, train_pooled
from privacy.ledger import BudgetExceeded, PrivacyLedger

RECORDS, GENES = 8, 6


class TinyModel(nn.Module):
    """Conv2d, GroupNorm, LayerNorm and Linear only: every layer has an Opacus grad sampler."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(1, 4, 8, stride=8), nn.GroupNorm(2, 4), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.tabular = nn.Sequential(nn.Linear(RECORDS + GENES, 16), nn.LayerNorm(16), nn.ReLU())
        self.head = nn.Linear(4 + 16, 1)

    def forward(self, batch):
        tabular = self.tabular(torch.cat([batch["records"], batch["genome"]], dim=1))
        return self.head(torch.cat([self.image(batch["image"]), tabular], dim=1)).squeeze(1)


class Synthetic(Dataset):
    """The batch contract's keys; the label is linearly separable from the records (margin 2)."""

    def __init__(self, n: int, seed: int, poison: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.label = (torch.rand(n, generator=g) < 0.5).float()
        self.records = torch.randn(n, RECORDS, generator=g) + (2 * self.label[:, None] - 1)
        if poison:
            self.records[n // 2:] = math.nan
        self.genome = torch.randn(n, GENES, generator=g)
        self.image = torch.randn(n, 1, 64, 64, generator=g)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i):
        return {"image": self.image[i], "imaging_mask": torch.tensor(True), "records": self.records[i],
                "records_mask": torch.tensor(True), "genome": self.genome[i],
                "genome_missing": torch.zeros(GENES, dtype=torch.bool), "genomics_mask": torch.tensor(True),
                "label": self.label[i]}


def _accuracy(weights, data: Synthetic) -> float:
    model = TinyModel()
    model.load_state_dict(weights)
    with torch.no_grad():
        logits = model({"image": data.image, "records": data.records, "genome": data.genome})
    return ((logits > 0).float() == data.label).float().mean().item()


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_dp_training_beats_chance_and_ends_within_the_budget(tmp_path):
    budget = PrivacySection(epsilon=4.0, delta=1e-4)
    settings = DPSettings(batch_size=64, rounds=3, learning_rate=0.02)  # PRV, hooks: the defaults
    ledger = PrivacyLedger(tmp_path / "ledger.db")
    model = TinyModel()
    before = _snapshot(model)
    results = train_local(model, Synthetic(512, seed=1), settings, ledger=ledger, budget=budget,
                          run_id="run-a", seed=7)
    assert _same(before, _snapshot(model))  # the caller's model is never trained in place
    assert all(r.private and r.examples == 512 and r.steps == 8 for r in results)
    assert list(results[-1].weights) == list(model.state_dict())
    spends = ledger.spends()
    assert [s.round for s in spends] == [1, 2, 3]
    assert len({s.noise_multiplier for s in spends}) == 1  # calibrated once for the whole planned run
    assert [r.epsilon_spent for r in results] == [s.epsilon_after for s in spends]
    assert budget.epsilon - 0.05 <= ledger.spent(budget.delta) <= budget.epsilon
    assert results[-1].epsilon_remaining == pytest.approx(budget.epsilon - ledger.spent(budget.delta))
    assert sum(r.epsilon_round for r in results) == pytest.approx(results[-1].epsilon_spent)
    assert _accuracy(results[-1].weights, Synthetic(400, seed=2)) >= 0.8


def test_a_new_run_is_calibrated_on_top_of_the_ledger(tmp_path):
    budget = PrivacySection(epsilon=3.0, delta=1e-4)
    ledger = PrivacyLedger(tmp_path / "ledger.db")
    data = Synthetic(256, seed=3)

    def round_of(run_id, planned_rounds, round):
        settings = DPSettings(batch_size=32, rounds=planned_rounds, accountant="rdp")
        trainer = DPTrainer(settings, ledger=ledger, budget=budget, run_id=run_id, seed=1)
        return trainer.train_round(TinyModel(), data, round=round)

    first = round_of("run-a", 3, 1)  # run-a stops after one of its three planned rounds
    second = round_of("run-b", 1, 1)  # run-b plans one round with what is left
    assert first.epsilon_spent < budget.epsilon - 0.5
    assert second.noise_multiplier < first.noise_multiplier  # two rounds' worth of budget left for one
    assert budget.epsilon - 0.05 <= ledger.spent(budget.delta) <= budget.epsilon
    assert second.epsilon_spent == pytest.approx(ledger.spent(budget.delta))
    with pytest.raises(BudgetExceeded, match="would cost"):  # a round beyond run-b's plan no longer fits
        round_of("run-b", 1, 2)
    assert len(ledger.spends()) == 2


def test_refusals_come_before_any_model_is_run(tmp_path, monkeypatch):
    calls = []
    forward = TinyModel.forward
    monkeypatch.setattr(TinyModel, "forward", lambda self, batch: calls.append(1) or forward(self, batch))
    ledger = PrivacyLedger(tmp_path / "ledger.db", "rdp")
    settings = DPSettings(batch_size=16, accountant="rdp")

    def train(data, epsilon=2.0, delta=0.05):
        trainer = DPTrainer(settings, ledger=ledger, budget=PrivacySection(epsilon=epsilon, delta=delta),
                            run_id="run-a", seed=0)
        return trainer.train_round(TinyModel(), data, round=2)

    with pytest.raises(ImpossibleSettings, match="not below 1/n") as raised:
        train(Synthetic(64, seed=0))
    assert raised.value.code == "dp.delta-too-large"
    with pytest.raises(ImpossibleSettings) as raised:
        train(Synthetic(0, seed=0))
    assert raised.value.code == "dp.empty-dataset"
    spent = ledger.record(run_id="run-a", round=1, noise_multiplier=1.0, sample_rate=0.25, steps=4,
                          budget_epsilon=8.0, delta=1e-3).epsilon_after
    with pytest.raises(BudgetExceeded, match="will not train"):  # run-a's next round at its noise level
        train(Synthetic(64, seed=0), epsilon=spent * 1.1, delta=1e-3)
    assert calls == [] and len(ledger.spends()) == 1


def test_a_nan_loss_leaves_ledger_and_model_untouched(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.db")
    trainer = DPTrainer(DPSettings(batch_size=16, rounds=3, accountant="rdp"), ledger=ledger,
                        budget=PrivacySection(epsilon=8.0, delta=1e-4), seed=0)
    model = TinyModel()
    model.load_state_dict(trainer.train_round(model, Synthetic(128, seed=0), round=1).weights)
    spends, weights = ledger.spends(), _snapshot(model)
    with pytest.raises(NonFiniteLoss, match=r"loss became nan at epoch 1, step \d+.*nothing was recorded"):
        trainer.train_round(model, Synthetic(128, seed=0, poison=True), round=2)
    assert ledger.spends() == spends
    assert _same(weights, _snapshot(model))


@pytest.mark.parametrize("mode", ["hooks", "ghost", "functorch"])
def test_each_grad_sample_mode_clips_per_sample(mode):
    """With no noise, one step moves the weights by minus the sum of per-example gradients, each clipped
    to max-grad-norm, over the expected batch size (8 = 16 examples x sample rate 1/2)."""
    torch.manual_seed(0)
    data = Synthetic(16, seed=4)
    batch = {k: v for k, v in DataLoader(data, batch_size=5).__iter__().__next__().items()}
    model = TinyModel()
    reference = copy.deepcopy(model)
    clipped_sum = [torch.zeros_like(p) for p in reference.parameters()]
    norms = []
    for i in range(5):
        reference.zero_grad()
        one = {k: v[i:i + 1] for k, v in batch.items()}
        nn.functional.binary_cross_entropy_with_logits(reference(one), one["label"]).backward()
        grads = [p.grad.clone() for p in reference.parameters()]
        norms.append(torch.cat([g.flatten() for g in grads]).norm())
    clip = float(torch.stack(norms).median())
    for i in range(5):
        reference.zero_grad()
        one = {k: v[i:i + 1] for k, v in batch.items()}
        nn.functional.binary_cross_entropy_with_logits(reference(one), one["label"]).backward()
        factor = min(1.0, clip / (float(norms[i]) + 1e-6))
        for total, p in zip(clipped_sum, reference.parameters(), strict=True):
            total += factor * p.grad
    before = [p.detach().clone() for p in model.parameters()]
    settings = DPSettings(max_grad_norm=clip, grad_sample_mode=mode, batch_size=8, accountant="rdp")
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    trainable, _ = wrap_private(model, optimizer, DataLoader(data, batch_size=8),
                                settings=settings, noise_multiplier=0.0,
                                accountant_state={"history": [], "mechanism": "rdp"},
                                noise_generator=torch.Generator().manual_seed(0))
    train_step(trainable, batch)
    for b, a, total in zip(before, model.parameters(), clipped_sum, strict=True):
        torch.testing.assert_close(b - a.detach(), total / 8, atol=1e-6, rtol=1e-4)


def test_an_empty_first_poisson_batch_is_a_noise_only_step():
    data = Synthetic(8, seed=5)
    seed = next(s for s in range(1000)
                if not (torch.rand(8, generator=torch.Generator().manual_seed(s)) < 1 / 8).any())
    model = TinyModel()
    settings = DPSettings(batch_size=1, grad_sample_mode="functorch", accountant="rdp")
    loader = DataLoader(data, batch_size=1, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainable, engine = wrap_private(model, optimizer, loader, settings=settings, noise_multiplier=1.0,
                                     accountant_state={"history": [], "mechanism": "rdp"},
                                     noise_generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in model.parameters()]
    train_epochs(trainable, 1, torch.device("cpu"))
    assert engine.accountant.history == [(1.0, 1 / 8, 8)]  # every step counted, the empty ones too
    assert all(not torch.equal(b, a) for b, a in zip(before, model.parameters(), strict=True))


def test_seeded_rounds_are_reproducible(tmp_path):
    def weights(seed, folder):
        trainer = DPTrainer(DPSettings(batch_size=16, rounds=1, accountant="rdp"),
                            ledger=PrivacyLedger(tmp_path / folder / "ledger.db"),
                            budget=PrivacySection(epsilon=8.0, delta=1e-4), seed=seed)
        torch.manual_seed(0)
        return trainer.train_round(TinyModel(), Synthetic(64, seed=0), round=1).weights

    first = weights(3, "a")
    assert _same(first, weights(3, "b"))
    assert not _same(first, weights(4, "c"))


def test_the_non_private_baseline_pools_sites_through_the_same_code():
    settings = DPSettings(enabled=False, batch_size=32, rounds=2, learning_rate=0.02)
    results = train_pooled(TinyModel(), [Synthetic(100, seed=1), Synthetic(60, seed=2)], settings, seed=0)
    last = results[-1]
    assert not last.private and last.examples == 160 and math.isinf(last.epsilon_spent)
    assert last.steps == 5 and last.noise_multiplier == 0.0
    assert _accuracy(last.weights, Synthetic(400, seed=9)) >= 0.8
    with pytest.raises(ValueError, match="ledger"):
        DPTrainer(DPSettings())


def test_settings_are_kebab_case_and_refuse_unknown_keys():
    settings = DPSettings.model_validate({"grad-sample-mode": "ghost", "local-epochs": 2,
                                          "max-grad-norm": 0.5})
    assert (settings.grad_sample_mode, settings.local_epochs, settings.max_grad_norm) == ("ghost", 2, 0.5)
    with pytest.raises(ValueError, match="noise"):
        DPSettings.model_validate({"noise": 1.0})
    with pytest.raises(ValueError, match="accountant"):
        DPSettings.model_validate({"accountant": "gdp"})
