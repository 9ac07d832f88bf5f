"""The training loop both paths share: a model, optimizer, loss and loader, private (Opacus) or not.

The model is any ``nn.Module`` whose forward takes a batch dict and returns logits of shape (B,); the loss
is binary cross-entropy on ``batch["label"]``; no other key is looked at. ``wrap_private`` is Opacus's
``make_private`` with Poisson sampling; with ``grad_sample_mode="ghost"`` the loss is Opacus's wrapper,
whose ``backward`` runs the two passes of ghost clipping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from opacus import PrivacyEngine
from opacus.data_loader import CollateFnWithEmpty
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from torch import nn
from torch.utils.data import DataLoader, Dataset

from privacy.dp_settings import DPSettings

Batch = Mapping[str, torch.Tensor]


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: the round stops, nothing is recorded or returned."""


@dataclass(frozen=True)
class Trainable:
    """What one round trains: ``module`` may be Opacus's GradSampleModule, ``criterion`` its ghost wrapper."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: Any
    loader: DataLoader


def make_optimizer(model: nn.Module, settings: DPSettings, *,
                   proximal_mu: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer over the trainable weights; ``proximal_mu > 0`` adds FedProx's pull towards the weights
    the round started from (see :func:`_proximal_pull`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=settings.learning_rate)
    else:
        optimizer = torch.optim.SGD(params, lr=settings.learning_rate, momentum=0.9)
    if proximal_mu > 0:
        optimizer.register_step_pre_hook(_proximal_pull(params, proximal_mu))
    return optimizer


def _proximal_pull(params: list[nn.Parameter], mu: float) -> Any:
    """FedProx's proximal term ``mu/2 ||w - w_start||^2`` as a gradient ``mu (w - w_start)``, added just
    before each update. On the optimizer Opacus wraps, this runs after clipping and noise: it depends on
    no example, so it is post-processing and leaves the (epsilon, delta) guarantee as it is."""
    start = [p.detach().clone() for p in params]

    def pull(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            for param, anchor in zip(params, start, strict=True):
                if param.grad is not None:
                    param.grad.add_(param - anchor, alpha=mu)

    return pull


def plain(model: nn.Module, dataset: Dataset, settings: DPSettings, generator: torch.Generator, *,
          proximal_mu: float = 0.0) -> Trainable:
    """The non-private baseline: shuffled fixed-size batches, no clipping, no noise."""
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, generator=generator)
    return Trainable(model, make_optimizer(model, settings, proximal_mu=proximal_mu), nn.BCEWithLogitsLoss(),
                     loader)


def wrap_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    *,
    settings: DPSettings,
    noise_multiplier: float,
    accountant_state: Mapping[str, Any],
    noise_generator: torch.Generator,
) -> tuple[Trainable, PrivacyEngine]:
    """``make_private`` on an engine whose accountant continues ``accountant_state`` (the ledger's).

    ``secure_mode=False`` because torchcsprng is not available; the seeded ``noise_generator`` makes runs
    reproducible, so a production site must derive it from fresh entropy (``seed=None``), never a known seed.
    """
    engine = PrivacyEngine(accountant=settings.accountant, secure_mode=False)
    engine.accountant.load_state_dict(dict(accountant_state))
    wrapped = engine.make_private(
        module=model, optimizer=optimizer, criterion=nn.BCEWithLogitsLoss(), data_loader=loader,
        noise_multiplier=noise_multiplier, max_grad_norm=settings.max_grad_norm, poisson_sampling=True,
        grad_sample_mode=settings.grad_sample_mode, noise_generator=noise_generator,
    )
    if settings.grad_sample_mode == "ghost":
        module, dp_optimizer, criterion, dp_loader = wrapped
    else:
        (module, dp_optimizer, dp_loader), criterion = wrapped, nn.BCEWithLogitsLoss()
    _prime_empty_batches(dp_loader, loader.dataset)
    return Trainable(module, dp_optimizer, criterion, dp_loader), engine


def _prime_empty_batches(loader: DataLoader, dataset: Dataset) -> None:
    """Teach Opacus's collate the batch structure before the first batch, which Poisson sampling may leave
    empty: unprimed it guesses the structure from ``dataset[0]`` and fails on dict samples."""
    collate = loader.collate_fn
    if isinstance(collate, CollateFnWithEmpty) and collate.first_batch is None:
        collate.first_batch = collate.wrapped_collator_fn([dataset[0]])


def _noise_only_step(optimizer: DPOptimizer) -> None:
    """An empty Poisson batch still costs a step and releases pure noise, as in Opacus's own empty-batch
    branch; the model is not run, since not every model (nor functorch's vmap) accepts zero rows."""
    for p in optimizer.params:
        if isinstance(optimizer, DPOptimizerFastGradientClipping):
            p.grad = torch.zeros_like(p)
        else:
            p.grad_sample = p.new_zeros((0, *p.shape))
    optimizer.step()


def _logits(module: nn.Module, batch: Batch) -> torch.Tensor:
    logits = module(batch)
    if logits.shape != batch["label"].shape:
        raise ValueError(f"the model returned logits of shape {tuple(logits.shape)}; the trainer needs one "
                         f"logit per example, shape {tuple(batch['label'].shape)}")
    return logits


def train_step(trainable: Trainable, batch: Batch) -> float | None:
    """One optimizer step; the batch's mean loss, None for an empty Poisson batch (a noise-only step).

    A NaN or infinite loss raises NonFiniteLoss before the step, so the weights never take it in.
    """
    trainable.optimizer.zero_grad()
    if len(batch["label"]) == 0:
        _noise_only_step(trainable.optimizer)
        return None
    loss = trainable.criterion(_logits(trainable.module, batch), batch["label"].float())
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLoss(f"the loss became {value}")
    loss.backward()
    trainable.optimizer.step()
    return value


def train_epochs(trainable: Trainable, epochs: int, device: torch.device) -> float:
    """Train ``epochs`` passes over the loader; the mean loss per example."""
    total, count = 0.0, 0
    for epoch in range(1, epochs + 1):
        for step, raw in enumerate(trainable.loader, start=1):
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in raw.items()}
            try:
                value = train_step(trainable, batch)
            except NonFiniteLoss as exc:
                raise NonFiniteLoss(f"{exc} at epoch {epoch}, step {step}: the round stopped, nothing was "
                                    "recorded or returned; lower [dp] learning-rate or look for NaN/inf "
                                    "in the features") from None
            if value is not None:
                total, count = total + value * len(batch["label"]), count + len(batch["label"])
    return total / max(count, 1)
