"""One hospital in a federation: a round of training and an evaluation, as the ClientApp asks for them.

No Flower here (the app in ``client/app.py`` only unpacks messages): everything a site does for the
coordinator is a method of :class:`FederatedSite`, callable and testable without a SuperLink. Every round
starts by walking the site's patients again (``Site.run``; unchanged files come from the cache), so a
consent withdrawn or a file changed since the last round counts from this round on.

What leaves the site is decided here: trained weights, counts, epsilon, the mean loss and validation
metrics on at least ``min_cell`` patients. A site that cannot train (no patients, budget spent, settings
that cannot work) raises :class:`SiteRefused` with a code and a message free of patient data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from client.cohort import TRAIN, VALIDATION
from client.cohort_dataset import CohortDataset
from client.round_store import RoundAlreadySpent, RoundStore, StoredRound
from client.site import Site
from client.site_audit import record_site_run, site_trail
from client.site_report import SiteReport
from client.site_summary import SiteSummary, site_counts
from compliance.audit import AuditTrail
from compliance.audit_chain import ChainHead
from compliance.fairness import sensitive_columns, site_fairness
from compliance.gdpr import UsageRegister
from modalities.fusion import FusionModel, create_model, predict
from modalities.fusion.digest import weights_digest
from privacy.accounting import ImpossibleSettings
from privacy.dp_steps import NonFiniteLoss
from privacy.dp_training import DPTrainer
from privacy.ledger import BudgetExceeded, LedgerError, PrivacyLedger

MIN_CELL = 10
"""Validation metrics on fewer patients than this are withheld (DESIGN: every cell n >= k, k = 10)."""


def _refusal_code(exc: Exception) -> str:
    """The refusal code of an error training raised before or instead of releasing an update."""
    if isinstance(exc, ImpossibleSettings):
        return exc.code
    return {BudgetExceeded: "dp.budget-spent", NonFiniteLoss: "dp.non-finite"}.get(type(exc), "dp.ledger")


class SiteRefused(RuntimeError):
    """The site will not take part in this round; ``code`` is machine-readable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TrainOutcome:
    """One round's contribution. ``metrics`` are numbers only: what the coordinator may see."""

    weights: dict[str, torch.Tensor]
    metrics: dict[str, float]
    digest: str
    """SHA-256 of ``weights``: what the site's audit trail records as sent."""
    replayed: bool
    """True when the update was re-sent from the round store instead of trained (no new spend)."""


@dataclass(frozen=True)
class Evaluation:
    """Validation of a global model at the site; ``auroc``/``loss`` are None below ``MIN_CELL`` patients."""

    examples: int
    positives: int
    loss: float | None
    auroc: float | None
    fairness: str | None = None
    """The site's subgroup count tables (``compliance.fairness``, cells under ``MIN_CELL`` suppressed) as
    JSON, for the coordinator's federated fairness view; None without validation patients."""

    def metrics(self) -> dict[str, float]:
        """Numbers for a MetricRecord; withheld values are NaN so every site replies with the same keys."""
        return {"num-examples": float(self.examples),
                "prevalence": self.positives / self.examples if self.examples else math.nan,
                "loss": math.nan if self.loss is None else self.loss,
                "auroc": math.nan if self.auroc is None else self.auroc}


class FederatedSite:
    """A site folder, its state and the study, as one participant of a federated run."""

    def __init__(self, root: Path, study: Any, state: Path | None = None, *, seed: int | None = None) -> None:
        self.site = Site(root, study, state)
        self.study = study
        self.seed = seed
        """None in production: DP noise must come from OS entropy. Tests and benchmarks pass one."""

    @property
    def id(self) -> str:
        return self.site.config.site.id

    @property
    def state(self) -> Path:
        return self.site.state

    @cached_property
    def trail(self) -> AuditTrail:
        """The site's audit trail, opened (key loaded, signer checked) once per request, not per event."""
        return site_trail(self.state, self.id)

    def prepare(self, *, round: int | None = None) -> SiteReport:
        """Walk every patient again: consent, erasure and changed files take effect from here on."""
        report = self.site.run(build_cache=True, workers=1)
        record_site_run(self.trail, report, round=round)
        return report

    def summary(self, run_id: str) -> SiteSummary:
        """Cohort sizes, modality counts and budget after walking every patient again (audited as a site
        run, as a round's walk is), and the code a train request of ``run_id`` would be refused with now
        (the trainer's own checks; nothing is spent)."""
        report = self.prepare()
        train = report.patients.split[TRAIN]
        refusal = ""
        if not self.study.dp.enabled:
            refusal = "dp.disabled"
        elif train == 0:
            refusal = "site.cohort-empty"
        else:
            try:
                self._trainer(run_id).plan_round(train)
            except (ImpossibleSettings, BudgetExceeded, LedgerError) as exc:
                refusal = _refusal_code(exc)
        return SiteSummary(site_counts(report, PrivacyLedger.for_state(self.state), self.site.config.privacy),
                           refusal)

    def _trainer(self, run_id: str) -> DPTrainer:
        return DPTrainer(self.study.dp, ledger=PrivacyLedger.for_state(self.state),
                         budget=self.site.config.privacy, run_id=run_id, seed=self.seed)

    def model(self, weights: Mapping[str, torch.Tensor]) -> FusionModel:
        """The study's model holding ``weights``; a mismatch with the study's architecture is refused."""
        model = create_model(self.study)
        try:
            model.load_state_dict(dict(weights))
        except RuntimeError as exc:
            raise SiteRefused("site.model-mismatch", f"the global weights do not fit this site's study "
                              f"model ({str(exc).splitlines()[0]}); check both use the same study") from exc
        return model

    def train(self, weights: Mapping[str, torch.Tensor], *, run_id: str, round: int,
              coordinator_head: ChainHead | None = None, proximal_mu: float = 0.0) -> TrainOutcome:
        """Train one round from the global ``weights`` under the site's budget, or replay a released one.

        ``coordinator_head`` is the coordinator's audit chain head, recorded in the site's trail (each side
        keeps the other's head, so neither can rewrite its history unnoticed)."""
        trail, store, incoming = self.trail, RoundStore(self.state), weights_digest(weights)
        if coordinator_head is not None:
            trail.record_anchor(coordinator_head, round)
        trail.append("model.received", {"round": round, "model": incoming})
        try:
            outcome = self._train(weights, incoming, store, run_id=run_id, round=round,
                                  proximal_mu=proximal_mu)
        except SiteRefused as refused:
            trail.append("training.refused", {"round": round, "reason": refused.code})
            raise
        if not outcome.replayed:
            m = outcome.metrics
            trail.append("training.round", {"round": round, "epsilon": m["epsilon-round"],
                                            "epsilon_total": m["epsilon-spent"], "delta": m["delta"],
                                            "examples": int(m["num-examples"]), "update": outcome.digest})
        return outcome

    def _train(self, weights: Mapping[str, torch.Tensor], incoming: str, store: RoundStore, *, run_id: str,
               round: int, proximal_mu: float) -> TrainOutcome:
        try:
            stored = store.replay(run_id, round, incoming)
        except RoundAlreadySpent as exc:
            raise SiteRefused("site.round-already-spent", str(exc)) from exc
        if stored is not None:
            return TrainOutcome(stored.weights, stored.metrics, weights_digest(stored.weights), replayed=True)
        if not self.study.dp.enabled:
            raise SiteRefused("dp.disabled", "the study turns differential privacy off; this site only "
                              "releases DP-trained updates (set [dp] enabled = true)")
        self.prepare(round=round)
        dataset = CohortDataset(self.state, self.study, TRAIN)
        if len(dataset) == 0:
            raise SiteRefused("site.cohort-empty", "no patient of this site may be used for training (after "
                              "consent and rejections); run `polyclinic site check` to see why")
        # recorded before training: a spend without its usage row would understate a patient's GDPR bound
        UsageRegister.for_state(self.state).record(run_id, round, [p.pseudonym for p in dataset.patients])
        budget = self.site.config.privacy
        try:
            result = self._trainer(run_id).train_round(self.model(weights), dataset, round=round,
                                                       proximal_mu=proximal_mu)
        except (ImpossibleSettings, BudgetExceeded, NonFiniteLoss, LedgerError) as exc:
            raise SiteRefused(_refusal_code(exc), str(exc)) from exc
        metrics = {"num-examples": float(result.examples), "epsilon-round": result.epsilon_round,
                   "epsilon-spent": result.epsilon_spent, "epsilon-remaining": result.epsilon_remaining,
                   "epsilon-budget": float(budget.epsilon), "delta": float(budget.delta),
                   "train-loss": result.mean_loss, "noise-multiplier": result.noise_multiplier}
        store.save(run_id, round, StoredRound(incoming, result.weights, metrics))
        return TrainOutcome(result.weights, metrics, weights_digest(result.weights), replayed=False)

    def evaluate(self, weights: Mapping[str, torch.Tensor]) -> Evaluation:
        """The global model on this site's validation patients (never used for training)."""
        dataset = CohortDataset(self.state, self.study, VALIDATION)
        n = len(dataset)
        if n == 0:
            return Evaluation(0, 0, None, None)
        batch = dataset.as_batch()
        probability = predict(self.model(weights), batch).probability
        labels = batch["label"]
        positives = int(labels.sum())
        fairness = site_fairness(labels.numpy().astype(int), probability.numpy().astype(float),
                                 sensitive_columns(p.sensitive for p in dataset.patients), k=MIN_CELL)
        if n < MIN_CELL:
            return Evaluation(n, positives, None, None, fairness.to_json())
        loss = float(F.binary_cross_entropy(probability.clamp(1e-7, 1 - 1e-7), labels))
        auroc = float(roc_auc_score(labels.numpy(), probability.numpy())) if 0 < positives < n else None
        return Evaluation(n, positives, loss, auroc, fairness.to_json())

