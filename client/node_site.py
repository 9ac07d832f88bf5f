"""Which site a Flower node serves: from its node-config in deployment, its partition in simulation.

In deployment the SuperNode's node-config names the site (``site-dir``, optionally ``state-dir``); in
simulation each virtual node takes the ``partition-id``-th folder (by name) of the run config's
``federation-dir`` and keeps its state under ``state-root/<folder>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context

from client.federated import FederatedSite


def site_for(context: Context, study: Any, defaults: Mapping[str, str]) -> FederatedSite:
    """The site this node serves, from node-config (deployment) or the partition id (simulation)."""
    node, run = context.node_config, {**defaults, **context.run_config}
    if "site-dir" in node:
        state = Path(str(node["state-dir"])) if node.get("state-dir") else None
        return FederatedSite(Path(str(node["site-dir"])), study, state)
    folders = sorted(p for p in Path(str(run["federation-dir"])).iterdir() if p.is_dir())
    folder = folders[int(node["partition-id"])]
    state_root = str(run.get("state-root", ""))
    return FederatedSite(folder, study, Path(state_root) / folder.name if state_root else None)
