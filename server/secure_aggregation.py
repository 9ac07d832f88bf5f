"""The study's rounds under secure aggregation (SecAgg+): the coordinator learns the sum, never one update.

Flower 1.42 has SecAgg+ only in its legacy workflow, so this is not ``server/rounds.py``'s loop: Flower's
``DefaultWorkflow`` runs the rounds with a ``LegacyContext`` and a legacy strategy, ``SecAggPlusWorkflow``
runs each round's training in four message exchanges with the sites' ``secaggplus_mod`` (see
``client/secure_aggregation.py``), and what it unmasks is the example-weighted mean of the sites' clipped
updates. :class:`UpdateAverage` adds that to the global model. Evaluation is not secret (global weights out,
aggregate metrics back) and goes through the same Message-API strategy as a plain run; every round is
checkpointed and anchored in the coordinator's audit trail as in a plain run.

Before each round the sites are asked for their summary (``server/site_query.py``) and a site that would
refuse (budget spent, no patients) is left out of that round: inside SecAgg+ its refusal would look like a
dropout. Not done here: resuming after a crash (``DefaultWorkflow`` always counts rounds from 1, and a
site's round store keys a replay by run id and round), and robust strategies (trimmed mean, Krum need the
individual updates that SecAgg+ hides; FedProx works, its term is the sites').
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from flwr.app import ConfigRecord, Context
from flwr.common import FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig, SimpleClientManager
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid

from compliance.audit import AuditTrail
from compliance.audit_chain import ChainHead
from modalities.fusion import create_model
from server.checkpoint import Checkpoint, CheckpointStore
from server.replies import SiteReply
from server.rounds import RoundBook, RoundSummary, first_checkpoint
from server.site_query import query_sites
from server.strategies import create_strategy

log = logging.getLogger(__name__)


class UpdateAverage(LegacyFedAvg):
    """FedAvg for SecAgg+: ``aggregate_fit`` receives the unmasked weighted mean update (the same array in
    every result), and returns the global weights plus that mean."""

    def __init__(self, round_config: Callable[[int], dict[str, Scalar]], min_sites: int,
                 initial: Parameters, ready: Callable[[], set[int]]) -> None:
        super().__init__(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=min_sites,
                         min_available_clients=min_sites, on_fit_config_fn=round_config,
                         initial_parameters=initial)
        self.ready = ready
        """Node ids of the sites that say they would train now (``server/site_query.py``)."""
        self.global_parameters = initial
        self.replies: list[SiteReply] = []
        """The last round's train replies, for the round summary."""

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[Any, Any]]:
        self.global_parameters = parameters
        sampled = super().configure_fit(server_round, parameters, client_manager)
        ready = self.ready()
        chosen = [(proxy, fit) for proxy, fit in sampled if proxy.node_id in ready]
        if len(chosen) < len(sampled):
            # inside SecAgg+ a refusal would look like a dropout and cost the round its threshold
            log.info("round %d: %d of %d sites would refuse or did not answer; left out of the round",
                     server_round, len(sampled) - len(chosen), len(sampled))
        return chosen

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[Any]) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.replies = [_reply(fit) for _, fit in results] + [
            SiteReply("site", {}, error=str(failure).splitlines()[0] if str(failure) else "failed")
            for failure in failures]
        if not results:
            return None, {}
        mean = parameters_to_ndarrays(results[0][1].parameters)
        start = parameters_to_ndarrays(self.global_parameters)
        new = [(s + m).astype(s.dtype) for s, m in zip(start, mean, strict=True)]
        return ndarrays_to_parameters(new), {}


def _reply(fit: FitRes) -> SiteReply:
    m = fit.metrics
    head = ChainHead(int(m["audit-sequence"]), str(m["audit-hash"])) if "audit-hash" in m else None
    numbers = {k: float(v) for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)
               and k != "audit-sequence"}
    return SiteReply(str(m.get("site-id", "site")), numbers, audit_head=head)


def _to_parameters(weights: dict[str, torch.Tensor]) -> Parameters:
    return ndarrays_to_parameters([t.detach().cpu().numpy() for t in weights.values()])


def run_secure_study(grid: Grid, context: Context, study: Any, coordinator: Path, *,
                     on_round: Callable[[RoundSummary], None] | None = None) -> Checkpoint:
    """Run the study's rounds with SecAgg+ (``[federation] secagg-*``); returns the last checkpoint."""
    settings = study.federation
    book = RoundBook(study, AuditTrail.for_state(coordinator, "coordinator"),
                     CheckpointStore(coordinator / "checkpoints"), on_round)
    names = list(create_model(study).state_dict())
    checkpoint = first_checkpoint(study)

    def round_config(round: int) -> dict[str, Scalar]:
        head = book.trail.head()
        config: dict[str, Scalar] = {
            "run-id": checkpoint.run_id, "study": book.study_json, "server-round": round,
            "audit-sequence": head.sequence, "audit-hash": head.hash,
            "update-clip": settings.secagg_update_clip, "max-weight": settings.secagg_max_weight}
        if settings.strategy == "fedprox":
            config["proximal-mu"] = settings.proximal_mu
        return config

    timeout = settings.round_timeout_s

    def ready() -> set[int]:
        config = ConfigRecord({"run-id": checkpoint.run_id, "study": book.study_json})
        said = query_sites(grid, config, timeout, book.sites, min_sites=settings.min_sites)
        return {node for node, summary in said.items() if not summary.error and not summary.refused}

    legacy = UpdateAverage(round_config, settings.min_sites, _to_parameters(checkpoint.weights), ready)
    evaluation = create_strategy(settings)

    def after_round(grid: Grid, context: Context) -> None:
        """The plain run's bookkeeping (``RoundBook``) for a round SecAgg+ has just aggregated."""
        nonlocal checkpoint
        state = cast(LegacyContext, context).state
        round = int(cast(int, state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND]))
        parameters = compat.arrayrecord_to_parameters(state.array_records[MAIN_PARAMS_RECORD], True)
        weights = {n: torch.from_numpy(np.array(a, copy=True))
                   for n, a in zip(names, parameters_to_ndarrays(parameters), strict=True)}
        trained = legacy.replies
        updated = any("num-examples" in r.metrics for r in trained)
        if not updated:
            log.warning("round %d: no site sent an update; the global model is unchanged", round)
        book.record_training(round, trained, weights if updated else None)
        checkpoint = book.evaluate_and_save(grid, evaluation, checkpoint, round, weights, trained)

    secagg = SecAggPlusWorkflow(num_shares=settings.secagg_shares,
                                reconstruction_threshold=settings.secagg_threshold,
                                clipping_range=settings.secagg_update_clip,
                                max_weight=settings.secagg_max_weight,
                                timeout=timeout)
    rounds = ServerConfig(num_rounds=study.dp.rounds, round_timeout=timeout)
    legacy_context = LegacyContext(context, config=rounds, strategy=legacy,
                                   client_manager=SimpleClientManager())
    DefaultWorkflow(fit_workflow=secagg, evaluate_workflow=after_round)(grid, legacy_context)
    return checkpoint
