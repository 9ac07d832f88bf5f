"""A Flower 1.42 federation on loopback, deployed as docker-compose.yml deploys it (a harness, not tests).

Same topology and flags as the compose file (``test_compose.py`` checks that with the command builders
below): a SuperLink with TLS and SuperNode authentication, its ServerApp executor, and per hospital a
SuperNode (TLS to the SuperLink, signed requests, TLS on its own runtime API) with its ClientApp
executor, all with ``--isolation process``. Every process logs to ``ROOT/logs/<name>.log``; ``stop()``
ends each process it started, and what those started, by PID; ``crash()`` SIGKILLs some of them mid-run
(a fault: the ServerApp's ``flwr-serverapp`` process, found with ``processes()``, or a SuperNode).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyclinic import keys_cli
from privacy.certificates import AUTH_KEY, CA_CERT, SERVER_CERT, SERVER_KEY, Layout

REPO = Path(__file__).resolve().parents[2]


def _load_register_script() -> Any:
    """``deploy/register.py``, the compose registration step, so that the harness exercises it too."""
    spec = importlib.util.spec_from_file_location("deploy_register", REPO / "deploy" / "register.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


registration = _load_register_script()
FLOWER_ENV = {"FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "FLWR_TELEMETRY_ENABLED": "0"}
"""Set for every Flower process: no `uv sync` at run time, nothing sent home."""
CONNECTION = registration.CONNECTION
"""The `flwr` CLI's name for the SuperLink (a table in ``$FLWR_HOME/config.toml``)."""
HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
"""The compose file's hospitals, and the tests'."""
RunConfig = Mapping[str, str | int | float | bool]
BIN = Path(sys.executable).parent  # the SuperLink and SuperNode find `flower-superexec` on PATH


# --- command builders, shared with docker-compose.yml --------------------------------------------------

def keys_argv(out: str, hospitals: Sequence[str]) -> list[str]:
    """``polyclinic keys init`` (arguments after ``polyclinic``) as the compose ``keys`` step runs it."""
    return ["keys", "init", out, "--hospitals", ",".join(hospitals), "--keep-existing"]


def init_keys(out: Path, hospitals: Sequence[str]) -> Layout:
    """Run ``polyclinic keys init`` in this process, through its own argument parser."""
    parser = argparse.ArgumentParser(prog="polyclinic")
    keys_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    if keys_cli.run(parser.parse_args(keys_argv(str(out), hospitals))) != 0:
        raise RuntimeError(f"polyclinic keys init {out} failed")
    return Layout(out)


def superlink_command(pki: Path, *, host: str, port: int, database: str) -> list[str]:
    """TLS with the SuperLink's own certificate; only registered SuperNodes may connect."""
    return ["flower-superlink",
            "--ssl-ca-certfile", str(pki / CA_CERT), "--ssl-certfile", str(pki / SERVER_CERT),
            "--ssl-keyfile", str(pki / SERVER_KEY), "--enable-supernode-auth",
            "--isolation", "process", "--host", host, "--port", str(port), "--database", database]


def executor_command(pki: Path, runtime_api: str) -> list[str]:
    """A SuperExec: runs the ServerApp (beside a SuperLink) or the ClientApp (beside a SuperNode)."""
    return ["flower-superexec", "--root-certificates", str(pki / CA_CERT),
            "--runtime-api-address", runtime_api]


def node_config(site_dir: str, state_dir: str) -> str:
    """What the ClientApp reads from ``context.node_config`` to find its hospital."""
    return f"site-dir='{site_dir}' state-dir='{state_dir}'"


def supernode_command(pki: Path, *, superlink: str, host: str, port: int, site_dir: str,
                      state_dir: str, auth_key: Path | None = None) -> list[str]:
    """Signs every request with the hospital's key; serves its ClientApp executor over TLS."""
    return ["flower-supernode", "--superlink", superlink, "--root-certificates", str(pki / CA_CERT),
            "--auth-supernode-private-key", str(auth_key or pki / AUTH_KEY),
            "--isolation", "process", "--host", host, "--port", str(port),
            "--ssl-certfile", str(pki / SERVER_CERT), "--ssl-keyfile", str(pki / SERVER_KEY),
            "--ssl-ca-certfile", str(pki / CA_CERT), "--node-config", node_config(site_dir, state_dir)]


# --- processes --------------------------------------------------------------------------------------

@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path | None = None,
             interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` and the log to read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s" + (f"; see {log}" if log else ""))


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of ``pid`` (from /proc), so that executors' app processes end too."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _command(pid: int) -> list[str]:
    """The argv of ``pid`` (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _gone(pid: int) -> bool:
    """Exited (or a zombie waiting for its parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _end(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; a process that is already gone is fine."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _gone(pid):
                return  # a zombie of ours is reaped by its Popen in stop()
            time.sleep(0.1)


# --- the federation ------------------------------------------------------------------------------------

@dataclass
class Loopback:
    """Keys, a SuperLink and any number of SuperNodes under ``root``; use as a context manager."""

    root: Path
    hospitals: Sequence[str]
    port: int = field(default_factory=free_port)
    started: list[Started] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pki: Layout = init_keys(self.root / "pki", self.hospitals)
        self.address = f"127.0.0.1:{self.port}"
        self.home = self.root / "flwr-home"
        self.home.mkdir(parents=True)
        (self.home / "config.toml").write_text(registration.connection_toml(CONNECTION, self.address,
                                                               self.pki.public / CA_CERT))
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.env = {**os.environ, **FLOWER_ENV, "FLWR_HOME": str(self.home),
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def spawn(self, name: str, command: Sequence[str], cwd: Path | None = None) -> Started:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                       cwd=cwd or self.root, stdin=subprocess.DEVNULL)
        started = Started(name, process, log)
        self.started.append(started)
        return started

    def start_superlink(self, timeout: float = 30) -> None:
        """The SuperLink and its ServerApp executor; returns once the port accepts connections."""
        link = self.spawn("superlink", superlink_command(self.pki.superlink, host="127.0.0.1", port=self.port,
                                                         database=str(self.root / "superlink.db")))
        wait_for(lambda: self._accepts(self.port) or self._exited(link), timeout, "SuperLink start", link.log)
        if link.process.poll() is not None:
            raise RuntimeError(f"flower-superlink exited with {link.process.returncode}; see {link.log}")
        self.spawn("serverapp-executor", executor_command(self.pki.public, self.address))

    def register(self, hospital: str) -> int | None:
        """``flwr supernode register`` (as deploy/register.py runs it): the SuperLink admits this key.

        The node id, or None if the key was registered before.
        """
        return registration.register(self.pki.registered_key(hospital), self.env, str(BIN / "flwr"))

    def start_supernode(self, hospital: str, site_dir: Path, state_dir: Path,
                        auth_key: Path | None = None, executor: bool = True) -> Started:
        """A hospital's SuperNode (and its ClientApp executor); ``auth_key`` replaces its own key."""
        port = free_port()
        node = self.spawn(hospital, supernode_command(
            self.pki.hospital(hospital), superlink=self.address, host="127.0.0.1", port=port,
            site_dir=str(site_dir), state_dir=str(state_dir), auth_key=auth_key))
        if executor:
            self.spawn(f"{hospital}-clientapp", executor_command(self.pki.public, f"127.0.0.1:{port}"))
        return node

    def nodes(self) -> dict[int, str]:
        """Node id -> status ("registered", "online", "offline", ...) as the SuperLink reports it."""
        listed = self.flwr_json("supernode", "list", CONNECTION)["nodes"]
        return {int(n["node-id"]): n["status"] for n in listed}

    def wait_online(self, node_ids: Sequence[int], timeout: float = 30) -> None:
        wait_for(lambda: all(self.nodes().get(i) == "online" for i in node_ids), timeout,
                 f"SuperNodes {list(node_ids)} online", self.logs)

    def flwr(self, *args: str, timeout: float = 60,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "flwr"), *args], env=self.env, cwd=cwd or self.root, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def flwr_json(self, *args: str, timeout: float = 60) -> dict[str, Any]:
        result = self.flwr(*args, "--format", "json", timeout=timeout)
        try:
            reply = json.loads(result.stdout)
        except json.JSONDecodeError:
            reply = {}
        if result.returncode != 0 or not reply.get("success"):
            raise RuntimeError(f"`flwr {' '.join(args)}` failed ({result.returncode}): "
                               f"{result.stdout.strip()} {result.stderr.strip()}")
        return reply

    @staticmethod
    def _run_args(app: Path, run_config: RunConfig) -> list[str]:
        overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
        return ["run", str(app), CONNECTION] + (["--run-config", overrides] if overrides else [])

    def run_app(self, app: Path, run_config: RunConfig, timeout: float) -> subprocess.CompletedProcess[str]:
        """``flwr run APP polyclinic --stream``: submit the app and follow its logs until the run ends."""
        result = self.flwr(*self._run_args(app, run_config), "--stream", timeout=timeout, cwd=app)
        (self.logs / "flwr-run.log").write_text(result.stdout + result.stderr)
        return result

    def submit_app(self, app: Path, run_config: RunConfig) -> int:
        """``flwr run APP polyclinic`` without following it: the Flower run id, at once."""
        return int(self.flwr_json(*self._run_args(app, run_config))["run-id"])

    def run_status(self, run_id: int) -> str:
        """The run's status as ``flwr list`` shows it (``running``, ``finished:completed``, ...)."""
        return next(str(r["status"]) for r in self.runs() if int(r["run-id"]) == run_id)

    def wait_finished(self, run_id: int, timeout: float) -> str:
        """Poll until the run is ``finished:*``; its final status."""
        return str(wait_for(lambda: (s := self.run_status(run_id)).startswith("finished") and s, timeout,
                            f"run {run_id} to finish", self.logs, interval=2))

    def stop_run(self, run_id: int) -> None:
        """``flwr stop RUN_ID``: the SuperLink marks the run stopped and drops what is left of it."""
        self.flwr_json("stop", str(run_id), CONNECTION)

    def runs(self) -> list[dict[str, Any]]:
        """``flwr list``: every run with its status (e.g. ``finished:completed``)."""
        return list(self.flwr_json("list", CONNECTION)["runs"])

    def stop(self) -> None:
        """End every process started here (newest first) and everything they started, by PID."""
        for started in reversed(self.started):
            descendants = _descendants(started.process.pid)
            _end(started.process.pid, timeout=10)
            started.process.wait(timeout=10)
            for pid in descendants:
                _end(pid, timeout=5)
        self.started.clear()

    def processes(self, command: str) -> list[int]:
        """PIDs, started here or by what was started here, that run the Flower command ``command``
        (e.g. ``flwr-serverapp``, which the ServerApp executor launches for each run)."""
        pids = [pid for s in self.started for pid in [s.process.pid, *_descendants(s.process.pid)]]
        return [pid for pid in pids if any(Path(arg).name == command for arg in _command(pid)[:2])]

    def crash(self, *pids: int) -> None:
        """SIGKILL each PID and everything it started, as a power cut would: nothing shuts down cleanly."""
        doomed = [p for pid in pids for p in [pid, *_descendants(pid)]]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all(_gone(pid) for pid in doomed), 10, f"processes {doomed} to die")

    def crash_supernode(self, hospital: str) -> None:
        """Kill a hospital's SuperNode and its ClientApp executor (with any ClientApp it runs)."""
        self.crash(*(s.process.pid for s in self.started if s.name in (hospital, f"{hospital}-clientapp")))

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    @staticmethod
    def _exited(started: Started) -> bool:
        return started.process.poll() is not None
