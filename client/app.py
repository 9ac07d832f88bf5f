"""The hospital's Flower ClientApp: unpack a message, ask :class:`FederatedSite`, pack the answer.

Where the site is: ``client/node_site.py``. The study arrives with every
message (``study`` in the config, as JSON): a site trains exactly the coordinator's study and validates it
with the same typed schema before use. This module, its SecAgg+ handler (``client/secure_aggregation.py``)
and ``server/app.py`` are the composition roots that may import ``polyclinic``; the rest of ``client/``
never does.

Replies carry one ArrayRecord (``arrays``, train only), one MetricRecord (``metrics``: numbers) and one
ConfigRecord (``site``: the site id, the digest of the update and the head of the site's audit chain, which
the coordinator anchors in its own trail; the train config carries the coordinator's head the other way).
A query (``client/site_summary.py``) answers with the site's cohort counts, budget and the refusal code a
train request would meet now (``refusal``, empty when ready).
A site that refuses replies with an error whose reason starts with ``site-refused <site id> <code>:``,
and the round goes on without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client.federated import FederatedSite, SiteRefused
from client.node_site import site_for
from client.secure_aggregation import secure_train_mod
from compliance.audit_chain import ChainHead
from polyclinic.logs import configure_stderr, site_log
from polyclinic.study import Study

SITE_REFUSED = 4200
"""Error code of a clean refusal (budget spent, no usable patients), as opposed to a crash."""



def _study(message: Message) -> Study:
    return Study.model_validate_json(str(message.content["config"]["study"]))


def _refusal(message: Message, site: FederatedSite, refused: SiteRefused) -> Message:
    return Message(Error(SITE_REFUSED, f"site-refused {site.id} {refused.code}: {refused}"), reply_to=message)


def _train(message: Message, site: FederatedSite) -> Message:
    config = message.content["config"]
    weights = message.content["arrays"].to_torch_state_dict()
    coordinator = (ChainHead(int(config["audit-sequence"]), str(config["audit-hash"]))
                   if "audit-hash" in config else None)
    try:
        outcome = site.train(weights, run_id=str(config["run-id"]), round=int(config["server-round"]),
                             coordinator_head=coordinator,
                             proximal_mu=float(config.get("proximal-mu", 0.0)))
    except SiteRefused as refused:
        return _refusal(message, site, refused)
    head = site.trail.head()
    content = RecordDict({
        "arrays": ArrayRecord(outcome.weights),
        "metrics": MetricRecord(outcome.metrics),
        "site": ConfigRecord({"site-id": site.id, "update-digest": outcome.digest,
                              "replayed": outcome.replayed, "audit-sequence": head.sequence,
                              "audit-hash": head.hash}),
    })
    return Message(content=content, reply_to=message)


def _evaluate(message: Message, site: FederatedSite) -> Message:
    try:
        evaluation = site.evaluate(message.content["arrays"].to_torch_state_dict())
    except SiteRefused as refused:
        return _refusal(message, site, refused)
    site_record = {"site-id": site.id}
    if evaluation.fairness is not None:
        site_record["fairness"] = evaluation.fairness
    content = RecordDict({"metrics": MetricRecord(evaluation.metrics()), "site": ConfigRecord(site_record)})
    return Message(content=content, reply_to=message)


def _query(message: Message, site: FederatedSite) -> Message:
    summary = site.summary(str(message.content["config"]["run-id"]))
    content = RecordDict({"metrics": MetricRecord(summary.metrics),
                          "site": ConfigRecord({"site-id": site.id, "refusal": summary.refusal})})
    return Message(content=content, reply_to=message)


def _handle(message: Message, context: Context, defaults: Mapping[str, str],
            handler: Callable[[Message, FederatedSite], Message]) -> Message:
    """Run ``handler`` for the node's site with the site's logging: our own lines go to the site's log
    file; third-party lines and Python warnings (pydicom quotes values and paths) go nowhere."""
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.set_num_threads(1)  # one core per virtual site: simulation runs as many sites as cores
    configure_stderr(verbose=False)
    site = site_for(context, _study(message), defaults)
    with site_log(site.state):
        reply = handler(message, site)
    if not reply.has_error():
        # the site's own wall and CPU time for this request: the federation's overhead is measured against it
        metrics = next(iter(reply.content.metric_records.values()))
        metrics["site-seconds"] = time.perf_counter() - started
        metrics["site-cpu-seconds"] = time.process_time() - cpu_started
    return reply


def create_client_app(defaults: Mapping[str, str] | None = None) -> ClientApp:
    """A ClientApp; ``defaults`` fill run-config keys a run leaves out (the demo's federation folders)."""
    fallback = dict(defaults or {})
    client_app = ClientApp(mods=[secure_train_mod(fallback)])  # SecAgg+ train messages, when a study asks

    @client_app.train()
    def train(message: Message, context: Context) -> Message:
        return _handle(message, context, fallback, _train)

    @client_app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        return _handle(message, context, fallback, _evaluate)

    @client_app.query()
    def query(message: Message, context: Context) -> Message:
        return _handle(message, context, fallback, _query)

    return client_app


app = create_client_app()
