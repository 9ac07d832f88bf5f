"""SecAgg+ end to end in Flower's Simulation Engine: 3 real sites train one DP-SGD round each; the
coordinator's new model must be the example-weighted mean of their clipped updates (within the step of
SecAgg+'s quantisation), and every vector the coordinator received from a site must be masked.

What this proves: our ServerApp, legacy strategy and ClientApp drive Flower's SecAgg+ to the right sum, and
no site's update reaches the coordinator in float form or as a bare quantised vector (a quantised update
lies in [0, 2**22); a masked one is spread over [0, 2**32)). It does not prove the protocol secure: that
rests on Flower's implementation (X25519 key agreement, Fernet, Shamir shares)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Context, Message, MessageType
from flwr.common import bytes_to_ndarray, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid, ServerApp

from client.app import create_client_app
from client.round_store import RoundStore
from client.secure_aggregation import clip_update
from modalities.fusion.digest import weights_digest
from polyclinic.simulation import FLOWER_ENVIRONMENT
from polyclinic.study import Study, default_study
from polyclinic.synth import GroundTruth
from privacy.accounting import calibrate_noise
from privacy.ledger import PrivacyLedger
from server.checkpoint import CheckpointStore, study_digest
from server.replies import read_reply
from server.secure_aggregation import run_secure_study

pytestmark = pytest.mark.slow
QUANTISATION_RANGE = 2**22  # SecAggPlusWorkflow's default


class RecordingGrid:
    """The real grid, keeping every message exchanged (what the coordinator sends and receives)."""

    def __init__(self, grid: Grid) -> None:
        self.grid, self.sent, self.received = grid, [], []

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """What Flower's SecAgg+ workflow calls."""
        messages = list(messages)
        self.sent.extend(messages)
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        self.received.extend(replies)
        return replies

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """What the coordinator's own exchanges (``server.replies``) call, with ``pull_messages``."""
        messages = list(messages)
        self.sent.extend(messages)
        return list(self.grid.push_messages(messages))

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        replies = list(self.grid.pull_messages(message_ids))
        self.received.extend(replies)
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self.grid, name)


def _study() -> Study:
    study = default_study()
    return study.model_copy(update={
        "dp": study.dp.model_copy(update={"batch_size": 8, "rounds": 1, "accountant": "rdp"}),
        # a clip of 1 is below the updates' norms (1.5-1.6): the clipping path is exercised
        "federation": study.federation.model_copy(update={
            "secure_aggregation": True, "secagg_update_clip": 1.0, "secagg_max_weight": 1000.0})})


SETTINGS = _study().federation


SPENT_SITE = "hospital-c"
"""Its ledger holds an earlier study's spend of its whole budget (to 1e-6): asked first, it says it would
refuse, and the coordinator leaves it out of the SecAgg+ round (inside it, a refusal would count as a
dropout)."""


def _spend_almost_everything(state: Path) -> None:
    study = _study()
    sigma = calibrate_noise(8.0, 1e-5, 1.0, 1, study.dp.accountant, epsilon_tolerance=1e-6)
    PrivacyLedger(state / "ledger.db", study.dp.accountant).record(
        run_id="an-earlier-study", round=1, noise_multiplier=sigma, sample_rate=1.0, steps=1,
        budget_epsilon=8.0, delta=1e-5)


@pytest.fixture(scope="module")
def secure_run(federation: tuple[Path, GroundTruth], tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, GroundTruth, RecordingGrid]:
    root, truth = federation
    out = tmp_path_factory.mktemp("secagg")
    _spend_almost_everything(out / "state" / SPENT_SITE)
    os.environ.update(FLOWER_ENVIRONMENT)
    from flwr.simulation import run_simulation

    grids: list[RecordingGrid] = []
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        grids.append(RecordingGrid(grid))
        run_secure_study(grids[0], context, _study(), out / "coordinator")

    client_app = create_client_app({"federation-dir": str(root), "state-root": str(out / "state")})
    run_simulation(server_app, client_app, num_supernodes=len(truth.sites), backend_config={
        "client_resources": {"num_cpus": 1.0, "num_gpus": 0.0},
        "init_args": {"log_to_driver": False, "include_dashboard": False, "logging_level": "error"}})
    return out, truth, grids[0]


def _stage(message: Message) -> str | None:
    configs = message.content.config_records.get(RECORD_KEY_CONFIGS) if message.has_content() else None
    return None if configs is None else str(configs.get(Key.STAGE))


def test_the_new_model_is_the_weighted_mean_of_the_clipped_updates(secure_run) -> None:
    out, truth, grid = secure_run
    fits = [m for m in grid.sent if _stage(m) == Stage.COLLECT_MASKED_VECTORS]
    trained = [site for site in truth.sites if site.id != SPENT_SITE]
    assert len(fits) == len(trained)
    sent = compat.recorddict_to_fitins(fits[0].content, keep_input=True)
    store = CheckpointStore(out / "coordinator" / "checkpoints")
    checkpoint = store.latest(study_digest(_study().model_dump_json()))
    assert checkpoint is not None and checkpoint.round == 1
    names = list(checkpoint.weights)
    arrays = parameters_to_ndarrays(sent.parameters)
    start = {n: torch.from_numpy(a.copy()) for n, a in zip(names, arrays, strict=True)}
    updates, weights = [], []
    for site in trained:
        stored = RoundStore(out / "state" / site.id).replay(checkpoint.run_id, 1, weights_digest(start))
        assert stored is not None, f"{site.id} did not train round 1"
        raw = {n: stored.weights[n].float() - start[n] for n in names}
        update, _ = clip_update(raw, SETTINGS.secagg_update_clip)
        updates.append(update)
        weights.append(float(stored.metrics["num-examples"]))
    total = sum(weights)
    expected = {n: start[n] + sum(w * u[n] for w, u in zip(weights, updates, strict=True)) / total
                for n in names}
    # each site's weighted update is stochastically rounded to a step of 2C/Q; the sum is divided by the
    # weights' sum (in units of max_weight)
    step = 2 * SETTINGS.secagg_update_clip / QUANTISATION_RANGE
    tolerance = len(weights) * step / (total / SETTINGS.secagg_max_weight) + 1e-6
    error = max(float((checkpoint.weights[n] - expected[n]).abs().max()) for n in names)
    moved = max(float((expected[n] - start[n]).abs().max()) for n in names)
    assert error <= tolerance, f"aggregate off by {error:.3g} (quantisation explains {tolerance:.3g})"
    assert moved > 100 * tolerance  # the check is not vacuous: the mean update is far above the error


def test_the_coordinator_only_ever_receives_masked_vectors(secure_run) -> None:
    _, truth, grid = secure_run
    masked = [m for m in grid.received if m.has_content() and Key.MASKED_PARAMETERS in
              m.content.config_records.get(RECORD_KEY_CONFIGS, {})]
    assert len(masked) == len(truth.sites) - 1  # all but the site that said it would refuse
    for reply in grid.received:
        if reply.has_content():  # no reply carries a float array: the mod empties the FitRes parameters
            assert all(len(record) == 0 for record in reply.content.array_records.values())
    quantised_limit = QUANTISATION_RANGE + 1  # a bare quantised (weighted) update never reaches this
    for reply in masked:
        vectors = [bytes_to_ndarray(b) for b in reply.content.config_records[RECORD_KEY_CONFIGS]
                   [Key.MASKED_PARAMETERS]]
        values = np.concatenate([v.ravel() for v in vectors])
        assert values.size > 1_000  # the whole model: enough values for the share below to mean something
        assert float(np.mean(values >= quantised_limit)) > 0.99  # uniform over [0, 2**32): 1 - 2**-10


def test_a_site_that_would_refuse_is_asked_first_and_left_out_of_the_secure_round(secure_run) -> None:
    out, truth, grid = secure_run
    answers = [read_reply(m, "?") for m in grid.received if m.metadata.message_type == MessageType.QUERY]
    assert sorted(a.site_id for a in answers) == sorted(s.id for s in truth.sites)  # asked before the round
    (spent,) = [a for a in answers if a.site_id == SPENT_SITE]
    assert spent.refused in {"dp.budget-spent", "dp.budget-too-small"}
    assert spent.metrics["epsilon-remaining"] < 1e-5
    assert all(not a.refused for a in answers if a.site_id != SPENT_SITE)
    node = next(m.metadata.src_node_id for m in grid.received if m.metadata.message_type == MessageType.QUERY
                and read_reply(m, "?").site_id == SPENT_SITE)
    assert not [m for m in grid.sent if m.metadata.dst_node_id == node and _stage(m) is not None]
    ledger = PrivacyLedger.for_state(out / "state" / SPENT_SITE)
    assert [s.run_id for s in ledger.spends()] == ["an-earlier-study"]  # nothing spent, nothing dropped
