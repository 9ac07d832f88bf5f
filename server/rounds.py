"""The coordinator's rounds: configure, send, aggregate, evaluate, checkpoint; resumable after a crash.

Flower's ``Strategy.start`` runs all rounds in one go and keeps its history in memory; a coordinator that
dies loses everything. This loop calls the same strategy methods one round at a time and saves a checkpoint
after each (``server/checkpoint.py``), so a restarted coordinator carries on from the last finished round
with the same run id, and sites answer a repeated round from their round store (no budget spent twice).
What each site said (trained, with its epsilon, or refused and why) goes to the run log and the history.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from compliance.audit import AuditTrail
from compliance.fairness import FairnessTable, FederatedFairness, merge
from modalities.fusion import create_model
from modalities.fusion.digest import weights_digest
from server.checkpoint import Checkpoint, CheckpointStore, study_digest
from server.replies import SiteReply, exchange
from server.site_query import query_sites
from server.strategies import create_strategy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundSummary:
    round: int
    rounds: int
    train: list[SiteReply]
    evaluate: list[SiteReply]
    aggregated: dict[str, float]
    """Example-weighted federated validation metrics (``auroc``, ``loss``) of the new global model."""
    fairness: FederatedFairness | None
    """The sites' subgroup tables merged (cells under k suppressed again), or None if none reported."""


def merged_fairness(replies: list[SiteReply]) -> FederatedFairness | None:
    """The federated fairness view of one evaluation; a table that fails validation is left out."""
    tables = []
    for reply in replies:
        if reply.fairness is None:
            continue
        try:
            tables.append(FairnessTable.from_json(reply.fairness))
        except ValueError as exc:
            log.warning("site %s sent a fairness table that is not valid, left out: %s", reply.site_id,
                        str(exc).splitlines()[0])
    return merge(tables) if tables else None


def _describe(round: int, replies: Iterable[SiteReply]) -> None:
    for reply in replies:
        if reply.refused:
            log.warning("round %d: site %s refused (%s): %s", round, reply.site_id, reply.refused,
                        reply.error)
        elif reply.error:
            log.warning("round %d: %s failed: %s", round, reply.site_id, reply.error)
        elif "epsilon-spent" in reply.metrics:
            m = reply.metrics
            log.info("round %d: site %s trained on %d patients; epsilon %.3f of %g spent, %.3f left",
                     round, reply.site_id, m["num-examples"], m["epsilon-spent"], m["epsilon-budget"],
                     m["epsilon-remaining"])


@dataclass
class RoundBook:
    """What every round loop (plain and SecAgg+) does around aggregation: anchor the sites' chain heads,
    record the new model, evaluate it at the sites, save the checkpoint, report the round."""

    study: Any
    trail: AuditTrail
    store: CheckpointStore
    on_round: Callable[[RoundSummary], None] | None
    sites: dict[int, str] = field(default_factory=dict)
    """Node id -> the site id it reported, so a node that dies later is still named by its site."""
    study_json: str = field(init=False)
    """What every request carries: sites validate and train exactly this study."""

    def __post_init__(self) -> None:
        self.study_json = self.study.model_dump_json()

    def record_training(self, round: int, trained: list[SiteReply],
                        weights: dict[str, torch.Tensor] | None) -> None:
        """Anchor every site's head; with ``weights`` (a new global model), record the aggregation."""
        for reply in trained:
            if reply.audit_head is not None:
                self.trail.anchor(reply.site_id, reply.audit_head, round)
        if weights is not None:
            updates = [r for r in trained if "num-examples" in r.metrics]
            self.trail.append("model.aggregated", {
                "round": round, "sites": len(updates), "model": weights_digest(weights),
                "examples": int(sum(r.metrics["num-examples"] for r in updates))})

    def evaluate_and_save(self, grid: Grid, strategy: Strategy, checkpoint: Checkpoint, round: int,
                          weights: dict[str, torch.Tensor], trained: list[SiteReply]) -> Checkpoint:
        """Federated evaluation of ``weights``, then the round's checkpoint (returned) and summary."""
        config = ConfigRecord({"run-id": checkpoint.run_id, "study": self.study_json})
        requests = strategy.configure_evaluate(round, ArrayRecord(weights), config, grid)
        replies, evaluated = exchange(grid, requests, self.study.federation.round_timeout_s, self.sites)
        aggregated = strategy.aggregate_evaluate(round, replies)
        fairness = merged_fairness(evaluated)
        summary = RoundSummary(round, self.study.dp.rounds, trained, evaluated, dict(aggregated or {}),
                               fairness)
        history = [*checkpoint.history, {"round": round, "train": [r.as_dict() for r in trained],
                                         "evaluate": [r.as_dict() for r in evaluated],
                                         "aggregated": summary.aggregated,
                                         "fairness": None if fairness is None else fairness.to_json()}]
        checkpoint = Checkpoint(checkpoint.run_id, round, checkpoint.study_digest, checkpoint.strategy,
                                weights, history)
        self.store.save(checkpoint)
        if self.on_round is not None:
            self.on_round(summary)
        return checkpoint


def first_checkpoint(study: Any) -> Checkpoint:
    """Round 0 of a new run: a fresh run id and the study's freshly initialised model."""
    described = {"name": study.federation.strategy, **study.federation.model_dump()}
    return Checkpoint(f"study-{uuid.uuid4().hex[:12]}", 0, study_digest(study.model_dump_json()), described,
                      create_model(study).state_dict())


def run_study(grid: Grid, study: Any, coordinator: Path, *,
              on_round: Callable[[RoundSummary], None] | None = None) -> Checkpoint:
    """Run (or resume) the study's rounds; returns the last checkpoint (the final global model)."""
    book = RoundBook(study, AuditTrail.for_state(coordinator, actor="coordinator"),
                     CheckpointStore(coordinator / "checkpoints"), on_round)
    strategy = create_strategy(study.federation)
    checkpoint = book.store.latest(study_digest(book.study_json))
    if checkpoint is None:
        checkpoint = first_checkpoint(study)
    else:
        log.info("resuming run %s after round %d", checkpoint.run_id, checkpoint.round)
    weights = checkpoint.weights
    min_sites = study.federation.min_sites
    query_sites(grid, ConfigRecord({"run-id": checkpoint.run_id, "study": book.study_json}),
                study.federation.round_timeout_s, book.sites, min_sites=min_sites)
    for round in range(checkpoint.round + 1, study.dp.rounds + 1):
        head = book.trail.head()
        config = ConfigRecord({"run-id": checkpoint.run_id, "study": book.study_json,
                               "audit-sequence": head.sequence, "audit-hash": head.hash})
        requests = strategy.configure_train(round, ArrayRecord(weights), config, grid)
        replies, trained = exchange(grid, requests, study.federation.round_timeout_s, book.sites)
        _describe(round, trained)
        updates = [r for r in trained if "num-examples" in r.metrics]
        new_arrays = strategy.aggregate_train(round, replies)[0] if len(updates) >= min_sites else None
        if new_arrays is None:
            log.warning("round %d: %d site(s) sent an update, %d needed ([federation] min-sites); the global "
                        "model is unchanged", round, len(updates), min_sites)
        else:
            weights = new_arrays.to_torch_state_dict()
        book.record_training(round, trained, None if new_arrays is None else weights)
        checkpoint = book.evaluate_and_save(grid, strategy, checkpoint, round, weights, trained)
    return checkpoint
