"""Register every hospital's SuperNode key with the SuperLink (``flwr supernode register``), idempotently.

    python deploy/register.py KEYS_DIR --superlink HOST:PORT --root-certificates CA.pem

KEYS_DIR holds ``<hospital>.pub`` (``polyclinic keys init`` writes them to ``public/supernodes/``). A key
the SuperLink already knows counts as registered, so the compose ``register`` step can run on every
``docker compose up``. Prints one JSON object {hospital: node id or null if it was already registered}.
Exit 0 when every key is registered, 1 otherwise (the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CONNECTION = "polyclinic"
ALREADY_REGISTERED = "Public key already in use"  # Flower 1.42: success false, exit status 0


def connection_toml(name: str, address: str, root_certificates: Path) -> str:
    """``$FLWR_HOME/config.toml`` naming one SuperLink (Flower 1.42 keeps CLI connections there)."""
    return (f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\naddress = "{address}"\n'
            f'root-certificates = "{root_certificates.resolve()}"\n')


def register(key: Path, env: dict[str, str], flwr: str = "flwr") -> int | None:
    """The new node id, or None when the SuperLink already holds this key; RuntimeError otherwise."""
    result = subprocess.run([flwr, "supernode", "register", str(key), CONNECTION, "--name", key.stem,
                             "--format", "json"], env=env, capture_output=True, text=True, check=False)
    try:
        reply = json.loads(result.stdout)
    except json.JSONDecodeError:
        reply = {}
    if reply.get("success"):
        return int(reply["node-id"])
    if ALREADY_REGISTERED in str(reply.get("error-message", "")):
        return None
    raise RuntimeError(f"registering {key} failed (exit {result.returncode}): "
                       f"{reply.get('error-message') or result.stderr.strip() or result.stdout.strip()}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", type=Path, help="folder of <hospital>.pub files")
    parser.add_argument("--superlink", required=True, help="HOST:PORT of the SuperLink")
    parser.add_argument("--root-certificates", type=Path, required=True, help="the federation CA (PEM)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keys = sorted(args.keys.glob("*.pub"))
    if not keys:
        print(f"register: no *.pub keys in {args.keys}; run `polyclinic keys init` first", file=sys.stderr)
        return 1
    home = Path(tempfile.mkdtemp(prefix="flwr-home-"))
    try:
        (home / "config.toml").write_text(connection_toml(CONNECTION, args.superlink, args.root_certificates))
        env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0",
               "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
        flwr = str(Path(sys.executable).with_name("flwr"))
        nodes = {key.stem: register(key, env, flwr) for key in keys}
    except RuntimeError as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(home)
    print(json.dumps(nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
