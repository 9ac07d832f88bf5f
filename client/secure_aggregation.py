"""The site's side of secure aggregation (SecAgg+): the same DP-SGD round, sent as a masked update.

Flower 1.42 has SecAgg+ only in its legacy workflow: the coordinator's ``SecAggPlusWorkflow`` talks to
``secaggplus_mod`` in four train messages (setup, share keys, collect masked vectors, unmask), and only the
third one reaches our handler, as a legacy ``fit`` (FitIns: parameters + a flat config; FitRes back). The
mod then quantises what we return, adds the pairwise and private masks and sends only the masked vector;
the server can remove the masks from the sum of the sites' vectors, never from one of them.

What a site returns is its update (trained weights minus the global weights), clipped to an L2 norm of
``update-clip``. Two reasons: the mod clips every coordinate to ``[-clipping_range, clipping_range]``
before quantising, and a coordinate of a vector whose L2 norm is at most C is at most C, so with the
coordinator's ``clipping_range`` = C no coordinate is ever cut silently; and an update is much smaller than
the weights, so the quantisation step (2C / quantization_range) is fine. The mod multiplies the update by
``num_examples / max_weight`` and sends that weight (masked too): the server gets the example-weighted
mean update, FedAvg's. The clipping is on top of DP-SGD's per-example clipping, which is what the DP
guarantee rests on; this one only bounds what each site adds to the sum.

:func:`secure_train_mod` routes only the SecAgg+ workflow's messages here, so one ClientApp serves plain
and secure studies. A site that refuses (budget spent, no patients) raises: the mod cannot pass an error
reply on, and to SecAgg+ the site is a dropout whose masks the other sites' key shares remove.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

from client.federated import SiteRefused
from client.node_site import site_for
from compliance.audit_chain import ChainHead
from modalities.fusion import create_model
from polyclinic.logs import configure_stderr, site_log
from polyclinic.study import Study

log = logging.getLogger(__name__)


def clip_update(update: Mapping[str, torch.Tensor], bound: float) -> tuple[dict[str, torch.Tensor], float]:
    """``update`` scaled down to an L2 norm of at most ``bound`` (over all tensors together), and the norm
    it had. Scaling, not cutting per coordinate: the direction of the update is kept."""
    norm = math.sqrt(sum(float(t.double().pow(2).sum()) for t in update.values()))
    scale = min(1.0, bound / norm) if norm > 0 else 1.0
    return {name: t * scale for name, t in update.items()}, norm


def _legacy_train(message: Message, context: Context, defaults: Mapping[str, str]) -> Message:
    fitins = compat.recorddict_to_fitins(message.content, keep_input=True)
    config = fitins.config
    study = Study.model_validate_json(str(config["study"]))
    torch.set_num_threads(1)  # one core per virtual site, as in client/app.py
    configure_stderr(verbose=False)
    site = site_for(context, study, defaults)
    names = list(create_model(study).state_dict())
    arrays = parameters_to_ndarrays(fitins.parameters)
    if len(arrays) != len(names):
        raise RuntimeError(f"site {site.id}: the coordinator sent {len(arrays)} arrays, the study's model "
                           f"has {len(names)}; check both use the same study")
    start = {name: torch.from_numpy(np.array(a, copy=True)) for name, a in zip(names, arrays, strict=True)}
    coordinator = (ChainHead(int(config["audit-sequence"]), str(config["audit-hash"]))
                   if "audit-hash" in config else None)
    run_id, round, bound = str(config["run-id"]), int(config["server-round"]), float(config["update-clip"])
    with site_log(site.state):
        try:
            outcome = site.train(start, run_id=run_id, round=round, coordinator_head=coordinator,
                                 proximal_mu=float(config.get("proximal-mu", 0.0)))
        except SiteRefused as refused:
            raise RuntimeError(f"site-refused {site.id} {refused.code}: {refused}") from refused
        update, norm = clip_update({n: outcome.weights[n].float() - start[n].float() for n in names}, bound)
        if norm > bound:
            log.warning("round %d: the update's L2 norm %.4g was clipped to %g before secure aggregation",
                        round, norm, bound)
    head = site.trail.head()
    # no update digest here: the coordinator never sees this site's update, so it could not check one
    metrics = {**outcome.metrics, "site-id": site.id, "replayed": outcome.replayed,
               "audit-sequence": head.sequence, "audit-hash": head.hash}
    # the mod weights the update by examples / max-weight; above 1 the weighted update would be cut
    weight = min(int(outcome.metrics["num-examples"]), int(float(config["max-weight"])))
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([update[n].numpy() for n in names]), weight,
                    metrics)
    return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=message)


def secure_train_mod(defaults: Mapping[str, str]) -> Mod:
    """A mod that sends the SecAgg+ workflow's train messages (they carry its config record) through
    ``secaggplus_mod`` to the legacy handler; every other message goes on to the app's own handlers. With
    it, one ClientApp serves plain and secure studies."""

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if (message.metadata.message_type == MessageType.TRAIN
                and RECORD_KEY_CONFIGS in message.content.config_records):
            return secaggplus_mod(message, context, lambda m, c: _legacy_train(m, c, defaults))
        return call_next(message, context)

    return mod
