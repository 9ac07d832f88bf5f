"""What SecAgg+ costs: round wall time of a SecAgg+ run over that of a plain FedAvg run of the same study.

Both runs are Flower's Simulation Engine in a fresh child process, on the same prepared synthetic
hospitals (each run gets fresh copies of the prepared STATE folders, so no run finds a budget spent):
plain is ``polyclinic.simulation.simulate`` (the demo's apps), secure is ``server/secure_aggregation.py``'s
ServerApp with ``client/secure_aggregation.py``'s ClientApp. A round's wall time is the time between two
``on_round`` callbacks (train, aggregate, evaluate, checkpoint), from round 2 on: round 1 also waits for Ray
to start. Runs alternate plain and secure (the machine is shared); ``secagg_over_plain`` is the median
secure round time over the median plain one. Target (issue 4): at most 3 at 10 sites. Last line: JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from federation import Prepared, prepare, study_for

from polyclinic.simulation import simulate
from polyclinic.study import Study

TARGET = 3.0


def _child(results: multiprocessing.Queue, secure: bool, study_json: str, federation: Path, state: Path,
           out: Path, sites: int) -> None:
    study = Study.model_validate_json(study_json)
    ended: list[float] = []
    start = time.perf_counter()

    def on_round(_: object) -> None:
        ended.append(time.perf_counter() - start)

    if secure:
        study = study.model_copy(update={
            "federation": study.federation.model_copy(update={"secure_aggregation": True})})
    simulate(study, federation, state, out, sites=sites, on_round=on_round)
    results.put(ended)


def timed_run(prepared: Prepared, study: Study, run: Path, *, secure: bool) -> list[float]:
    """Seconds from the start to each round's end, for one run over all prepared sites."""
    for site in prepared.ids:
        (run / "sites").mkdir(parents=True, exist_ok=True)
        (run / "sites" / site).symlink_to(prepared.sites / site)
        shutil.copytree(prepared.pristine / site, run / "state" / site)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_child, args=(results, secure, study.model_dump_json(), run / "sites",
                                                 run / "state", run / "out", len(prepared.ids)))
    child.start()
    child.join()
    try:
        return results.get(timeout=10)
    except queue.Empty:
        raise RuntimeError(f"the {'secure' if secure else 'plain'} run in {run} ended (exit code "
                           f"{child.exitcode}) without timings; site logs are under {run}/state/<site>/logs"
                           ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--patients", type=int, default=40, help="patients per site")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per run; round 1 is not timed")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="plain + secure pairs")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2: round 1 includes Ray's start-up and is not timed")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="polyclinic-secagg-"))
    study = study_for(args.rounds, args.batch, "rdp")
    rounds: dict[str, list[float]] = {"plain": [], "secure": []}
    try:
        prepared = prepare(work, args.sites, args.patients, study)
        for repeat in range(args.repeats):
            for mode in ("plain", "secure"):
                ended = timed_run(prepared, study, work / f"{mode}-{repeat}", secure=mode == "secure")
                rounds[mode] += [b - a for a, b in itertools.pairwise(ended)]
                print(json.dumps({"progress": mode, "repeat": repeat, "round_ends_s": ended}),
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain, secure = statistics.median(rounds["plain"]), statistics.median(rounds["secure"])
    result: dict[str, Any] = {
        "secagg_over_plain": secure / plain, "target": TARGET, "within_target": secure / plain <= TARGET,
        "round_wall_s": {"plain_median": plain, "secure_median": secure, **rounds},
        "secure_aggregation": {k: v for k, v in study.federation.model_dump().items()
                               if k.startswith("secagg")}, "sites": args.sites,
        "patients_per_site": args.patients, "rounds": args.rounds, "batch_size": args.batch,
        "repeats": args.repeats, "accountant": "rdp", "cores": os.cpu_count(),
        "seconds": time.perf_counter() - started}
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
