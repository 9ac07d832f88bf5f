"""``polyclinic keys init``: every key and certificate a TLS federation with SuperNode authentication needs.

The folder layout is ``privacy.certificates.Layout``; docker-compose.yml runs this once in its ``keys``
service and the loopback test harness runs it in a temporary folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from modalities.settings import ConfigError
from privacy.certificates import Layout, write_federation

DEFAULT_SERVER_NAMES = ("superlink", "localhost", "127.0.0.1")
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


def hospital_server_names(hospital: str) -> list[str]:
    """Names a hospital's SuperNode runtime API answers to: its compose service and loopback."""
    return [hospital, *LOOPBACK_NAMES]


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. hospital-a,hospital-b")
    return names


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``keys init`` to the ``polyclinic`` sub-commands."""
    keys = commands.add_parser("keys", help="keys and certificates for a TLS federation with node auth")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    init = keys_commands.add_parser("init", help="issue a CA, server certificates and SuperNode keys",
                                    description=__doc__.splitlines()[0])
    init.add_argument("out", type=Path, help="folder to write into: ca/, public/, superlink/, <hospital>/")
    init.add_argument("--hospitals", type=_names, required=True,
                      help="comma-separated hospital names; each gets a SuperNode key pair and TLS "
                           "certificate valid for the name itself, localhost and 127.0.0.1")
    init.add_argument("--server-names", type=_names, default=list(DEFAULT_SERVER_NAMES),
                      help="host names and IP addresses the SuperLink certificate is valid for "
                           f"(default: {','.join(DEFAULT_SERVER_NAMES)})")
    init.add_argument("--keep-existing", action="store_true",
                      help="succeed without writing when every file is already there (for a "
                           "start-up step that runs on every `docker compose up`)")


def run(args: argparse.Namespace) -> int:
    """Write the keys; 0 when written (or kept), ``ConfigError``/``FileExistsError`` otherwise."""
    stderr = Console(stderr=True, highlight=False)
    layout = Layout(args.out)
    if args.keep_existing and all(path.is_file() for path in layout.files(args.hospitals)):
        stderr.print(f"keys under {args.out} are complete; kept them")
        return 0
    try:
        write_federation(args.out, args.server_names,
                         {name: hospital_server_names(name) for name in args.hospitals})
    except ValueError as exc:
        raise ConfigError(f"keys init: {exc}") from exc
    stderr.print(f"wrote keys for the SuperLink and {len(args.hospitals)} hospitals under {args.out}; "
                 f"register each hospital with `flwr supernode register {layout.public}/supernodes/"
                 "<hospital>.pub <connection>` and keep ca/ca.key offline")
    return 0
