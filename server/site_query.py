"""Ask every connected site for its summary (``client/site_summary.py``) and say who is ready.

The consortium engineer sees at the start of a run which hospitals answered, how many patients each can
use and how much of its budget is left; under secure aggregation the coordinator leaves out, before each
round, a site that says it would refuse.
"""

from __future__ import annotations

import logging

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from server.replies import SiteReply, exchange

log = logging.getLogger(__name__)


def query_sites(grid: Grid, config: ConfigRecord, timeout: float, sites: dict[int, str], *,
                min_sites: int) -> dict[int, SiteReply]:
    """Node id -> that site's summary (an error or timeout when it could not answer), once ``min_sites``
    nodes are connected (as the strategies wait). ``config`` holds ``study`` (JSON) and ``run-id``, for
    which each site checks its budget. ``sites`` is the node -> site id map the round loops keep; answers
    add to it."""
    _, nodes = sample_nodes(grid, min_sites, 0)
    messages = [Message(RecordDict({"config": config}), dst_node_id=node, message_type=MessageType.QUERY)
                for node in nodes]
    _, said = exchange(grid, messages, timeout, sites)
    by_node = {summary.node: summary for summary in said if summary.node is not None}
    for summary in by_node.values():
        _describe(summary)
    return by_node


def _describe(summary: SiteReply) -> None:
    m = summary.metrics
    if summary.error:
        log.warning("site %s did not answer the query: %s", summary.site_id, summary.error)
        return
    log.info("site %s: %d patients usable (train %d, validation %d), epsilon %.3f of %g spent; %s",
             summary.site_id, m.get("patients-included", 0), m.get("patients-train", 0),
             m.get("patients-validation", 0), m.get("epsilon-spent", 0.0), m.get("epsilon-budget", 0.0),
             f"would refuse ({summary.refused})" if summary.refused else "ready")
