"""What a site answered, read without trusting it: one :class:`SiteReply` per addressed site, whether it
replied, refused, failed or timed out, named by the site id it reported (a node that died is still named by
the site it was). Both round loops and the start-of-run query read replies through here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from flwr.app import Message
from flwr.serverapp import Grid

from compliance.audit_chain import ChainHead

REFUSAL_PREFIX = "site-refused "
REPLY_POLL_S = 0.02
"""How long the coordinator waits between asks for replies. A round lasts until its last reply is read, so
half this interval, on average, is added to every exchange. Flower's own ``send_and_receive`` waits 0.1 s
(the Simulation Engine's grid) or 3 s (the deployment's) between asks; an ask is one read of the link's
state (one gRPC call in deployment), cheap beside a site's round."""


@dataclass(frozen=True)
class SiteReply:
    """One site's answer to one request; ``refused`` is a reason code, ``error`` a crash or a timeout."""

    site_id: str
    metrics: dict[str, float]
    refused: str | None = None
    error: str | None = None
    audit_head: ChainHead | None = None
    """The site's audit chain head after the round, anchored in the coordinator's trail."""
    fairness: str | None = None
    """The site's suppressed subgroup count tables (JSON) from an evaluation."""
    node: int | None = None
    """The Flower node that answered (or should have)."""

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site_id, "metrics": self.metrics, "refused": self.refused, "error": self.error}


def read_reply(message: Message, node: str) -> SiteReply:
    """What a reply says, without trusting it to be well formed; ``node`` names the site it came from
    when the reply does not (an error, or a reply the SuperLink wrote because the node was gone)."""
    if message.has_error():
        reason = message.error.reason or ""
        if reason.startswith(REFUSAL_PREFIX):
            site_id, code = reason[len(REFUSAL_PREFIX):].split(":", 1)[0].split(" ", 1)
            return SiteReply(site_id, {}, refused=code, error=reason.split(": ", 1)[-1])
        return SiteReply(node, {}, error=reason.splitlines()[0] if reason else f"error {message.error.code}")
    content = message.content
    site = content["site"] if "site" in content.config_records else {}
    metrics = next(iter(content.metric_records.values()), {})
    head = ChainHead(int(site["audit-sequence"]), str(site["audit-hash"])) if "audit-hash" in site else None
    return SiteReply(str(site.get("site-id", node)),
                     {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}, audit_head=head,
                     fairness=str(site["fairness"]) if "fairness" in site else None,
                     refused=str(site["refusal"]) if site.get("refusal") else None)


def exchange(grid: Grid, messages: Iterable[Message], timeout: float,
              sites: dict[int, str]) -> tuple[list[Message], list[SiteReply]]:
    """Send, wait, and say what every addressed site answered, a timeout included. ``sites`` maps node
    ids to the site ids they reported, so a node that died is still named by its site."""
    sent = list(messages)
    replies = send_and_receive(grid, sent, timeout)
    to_node = {m.metadata.message_id: m.metadata.dst_node_id for m in sent if m.metadata.message_id}
    said, answered = [], set()
    for reply in replies:
        node = to_node.get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)
        answered.add(node)
        read = replace(read_reply(reply, sites.get(node, f"node-{node}")), node=node)
        if read.refused or not read.error:  # a refusal names its site too
            sites[node] = read.site_id
        said.append(read)
    said += [SiteReply(sites.get(node, f"node-{node}"), {}, error=f"no reply within {timeout:g} s", node=node)
             for node in sorted({m.metadata.dst_node_id for m in sent} - answered)]
    return replies, said


def send_and_receive(grid: Grid, messages: list[Message], timeout: float) -> list[Message]:
    """Flower's ``Grid.send_and_receive`` (push, then pull until every reply is in or ``timeout`` runs
    out) from the grid's own push and pull, asking every ``REPLY_POLL_S``."""
    waiting = set(grid.push_messages(messages))
    deadline = time.monotonic() + timeout
    replies: list[Message] = []
    while waiting:
        pulled = list(grid.pull_messages(waiting))
        replies += pulled
        waiting -= {m.metadata.reply_to_message_id for m in pulled}
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(REPLY_POLL_S)
    return replies
