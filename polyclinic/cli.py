"""``polyclinic``: the command line contract of DESIGN.md (tests and scripts depend on it).

Exit codes: 0 ok, 1 a check failed, 2 bad input or configuration (one line on stderr saying why).
``--json`` prints exactly one JSON object on stdout and nothing else there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from client.parallel import default_workers
from modalities.settings import ConfigError
from polyclinic import audit_cli, gdpr_cli, keys_cli, predict_cli, report_cli
from privacy.keys import UntrustedKeyError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyclinic", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--study", type=Path, help="study.toml (default: the built-in synthetic study)")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write synthetic hospitals: one SITE folder per hospital")
    synth.add_argument("out", type=Path)
    synth.add_argument("--sites", type=_positive, default=3)
    synth.add_argument("--patients", type=_positive, default=120)
    synth.add_argument("--seed", type=int, default=0)

    site = commands.add_parser("site", help="inspect or prepare one hospital's data")
    site_commands = site.add_subparsers(dest="site_command", required=True)
    for name, text in (("check", "what will be used, what is rejected and why"),
                       ("prepare", "build the de-identified feature cache")):
        sub = site_commands.add_parser(name, help=text)
        sub.add_argument("site", type=Path)
        sub.add_argument("--state", type=Path, help="state directory (default: SITE/.polyclinic)")
        sub.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
        sub.add_argument("--workers", type=_positive, default=default_workers(),
                         help="processes that decode and featurise (default: the usable cores, at most 4)")

    audit_cli.add_parser(commands)
    keys_cli.add_parser(commands)
    gdpr_cli.add_parser(commands)
    report_cli.add_parser(commands)
    predict_cli.add_parser(commands)

    demo = commands.add_parser("demo", help="synthetic hospitals, federated DP training, evaluation")
    demo.add_argument("--sites", type=_positive, default=3)
    demo.add_argument("--patients", type=_positive, default=120)
    demo.add_argument("--rounds", type=_positive, default=5)
    demo.add_argument("--epsilon", type=_positive_float, default=8.0, help="every site's privacy budget")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", type=Path, default=Path("demo-out"))
    demo.add_argument("--json", action="store_true")
    return parser


def _run_synth(args: argparse.Namespace) -> int:
    from polyclinic.synth import generate

    try:
        truth = generate(args.out, sites=args.sites, patients=args.patients, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(f"synth: {exc}") from exc
    Console(stderr=True).print(f"wrote {len(truth.sites)} synthetic hospitals under {args.out}")
    return EXIT_OK


def _run_site(args: argparse.Namespace) -> int:
    from client.site import Site
    from client.site_audit import record_site_run, site_trail
    from polyclinic.console import print_json, progress_bar, render_site, stderr
    from polyclinic.logs import site_log
    from polyclinic.study import load_study

    site = Site(args.site, load_study(args.study), args.state)
    if site.config_defaulted:
        stderr.print(f"note: no site.toml in {args.site}; using defaults (site id {site.config.site.id!r}, "
                     f"consent {site.config.consent.policy}, state {site.state})", highlight=False)
    with site_log(site.state), progress_bar(not args.json) as progress:
        report = site.run(build_cache=args.site_command == "prepare", progress=progress,
                          workers=args.workers)
    if args.site_command == "prepare":
        record_site_run(site_trail(site.state, report.site_id), report)
    if args.json:
        print_json(report.to_json())
    else:
        render_site(report, Console())
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from polyclinic.demo import run_demo

    return run_demo(args, as_json=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from polyclinic.logs import configure_stderr

    configure_stderr(args.verbose)
    handlers = {"synth": _run_synth, "site": _run_site, "demo": _run_demo, "audit": audit_cli.run,
                "keys": keys_cli.run, "gdpr": gdpr_cli.run,
                "report": report_cli.run, "predict": predict_cli.run}
    try:
        return handlers[args.command](args)
    except (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError, UntrustedKeyError) as exc:
        print(f"polyclinic: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
