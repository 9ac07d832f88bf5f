"""A federated run in Flower's Simulation Engine (Ray), in this process: the demo's and benchmarks' way.

The same ServerApp and ClientApp as ``flwr run .`` and the deployment, built with the folders passed in
rather than read from the run config (``run_simulation`` takes no run config). Ray's own log lines stay
out of the terminal (``log_to_driver`` off), and the sites' logging is the ClientApp's (their own log file,
nothing from third parties).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from client.app import create_client_app
from polyclinic.study import Study
from server.app import create_server_app
from server.rounds import RoundSummary

FLOWER_ENVIRONMENT = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
                      "RAY_USAGE_STATS_ENABLED": "0"}
"""A hospital product sends nothing home and installs nothing at run time."""


def concurrent_sites(sites: int, cores: int | None = None) -> int:
    """How many virtual sites run at once: all while there are at most two per core, else one per core.

    A site's round is one single-threaded job. Whole jobs on one worker per core leave cores idle at the
    end of a round (3 sites on 2 cores: 2 site-times); run together, the operating system shares the cores
    and the round takes 1.5 site-times. Beyond two sites per core the idle tail is a small share of the
    round and every extra Ray worker costs memory (torch, Opacus and the apps loaded once more).
    """
    cores = cores or os.cpu_count() or 1
    return sites if sites <= 2 * cores else cores


def simulate(study: Study, federation: Path, state_root: Path, out: Path, *, sites: int,
             on_round: Callable[[RoundSummary], None] | None = None, concurrency: int | None = None) -> None:
    """Run the study over ``sites`` site folders of ``federation`` (states under ``state_root``);
    checkpoints go to ``out/coordinator``, the global model to ``out/model``. ``concurrency`` sites run
    at once (default :func:`concurrent_sites`)."""
    os.environ.update(FLOWER_ENVIRONMENT)
    from flwr.simulation import run_simulation  # after the environment: Flower reads it at import

    logging.getLogger("flwr").setLevel(logging.ERROR)  # e.g. run_simulation's deprecation notice
    server_app = create_server_app(study, {"out-dir": str(out.resolve())}, on_round=on_round)
    client_app = create_client_app({"federation-dir": str(federation.resolve()),
                                    "state-root": str(state_root.resolve())})
    workers = concurrency or concurrent_sites(sites)
    # Ray's CPUs are logical: one per concurrent site, each site asking for one
    run_simulation(server_app, client_app, num_supernodes=sites, backend_config={
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": workers, "log_to_driver": False, "include_dashboard": False,
                      "logging_level": "error"},
    })
