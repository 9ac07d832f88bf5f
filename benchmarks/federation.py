"""Federation cost and utility: Flower's overhead per round, scale to many sites, federated vs pooled AUROC.

Every federated run is Flower's Simulation Engine (``polyclinic.simulation.simulate``: the demo's
ServerApp and ClientApp over Ray) in a fresh child process, on synthetic hospitals prepared beforehand
(each run gets fresh copies of the prepared STATE folders, so no run finds a budget already spent).

* ``overhead_fraction`` (3 sites x 120 patients, 5 rounds): per round, wall time between consecutive
  ``on_round`` callbacks (round 1: from the ServerApp's start, after Ray and Flower's engine are up; that
  start-up and ``ray.init`` alone are reported apart) against the local critical path: the sites' own
  work (``site-cpu-seconds``: the CPU time of prepare + DP training, then of evaluation, in each site's
  process) spread over the machine's cores, i.e. max(max t_i, sum t_i / cores) for train plus the same
  for evaluate: no schedule on these cores can be faster. overhead_fraction = median over all rounds of
  all runs of (wall - critical path) / wall; whatever is not the sites' computation counts as overhead
  (Flower, Ray, the coordinator, idle cores, the sites' disk waits).
* ``schedule``: the same runs with one site per core at a time (``concurrency`` = cores, whole sites on
  workers) instead of the default (all sites at once while there are at most two per core), interleaved
  per seed: median round wall time of the two and their ratio.
* ``scale``: 10, 30 and 100 small sites (40 patients, batch 8, 1 round; RDP accountant, whose noise
  calibration is about 3x faster than PRV's): round wall times, the whole run, and the peak resident
  memory of the process tree (this process, the simulation, Ray's daemons and workers).
  ``memory_growth`` compares peak memory per site at the smallest and largest federation.
* ``federated_over_pooled``: held-out AUROC (all sites' validation patients) of the federated DP model /
  that of the pooled DP model (``train_pooled`` on all sites' train splits together, same DP settings,
  same (epsilon, delta), a fresh ledger); medians over seeds. Each seed is its own federation (generated
  with the seed, its own keyed split), and seeds the initial model and the pooled run's sampling and
  noise; the sites draw their DP noise from OS entropy, as in production. With one split for all seeds,
  runs of the same code gave 0.993 and 1.024. The sites' pseudonym keys are derived from the seed, as in
  ``benchmarks/utility.py``, so every run has the same splits (until 2026-12-05 they were random, and
  every run drew new ones).
* ``secagg_over_plain``: measured by ``benchmarks/secure_aggregation.py`` (10 sites), not here.

The machine is shared: runs alternate federated and pooled, every figure is a median. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from federation_probe import RunTiming, ray_startup_seconds, timed_simulation
from utility import seeded_pseudonym_key

from client.cohort_dataset import CohortDataset
from client.site import Site
from client.site_config import PrivacySection
from modalities.fusion import create_model
from polyclinic.evaluation import held_out_auroc
from polyclinic.study import Study, default_study
from polyclinic.synth import generate
from privacy.dp_training import train_pooled
from privacy.ledger import PrivacyLedger
from server.model_card import MODEL_FILE

EPSILON, DELTA = 8.0, 1e-5
MB = 1024 * 1024


def study_for(rounds: int, batch: int, accountant: str, seed: int = 0) -> Study:
    study = default_study()
    return study.model_copy(update={
        "dp": study.dp.model_copy(update={"rounds": rounds, "batch_size": batch, "accountant": accountant}),
        "fusion": study.fusion.model_copy(update={"seed": seed})})


def critical_path(seconds: Sequence[float], cores: int) -> float:
    """Shortest possible wall time of these single-threaded jobs on ``cores`` cores: the longest job, or
    the total spread evenly, whichever is larger."""
    return max(max(seconds, default=0.0), sum(seconds) / cores)


def round_breakdown(timing: RunTiming, cores: int, startup: float) -> list[dict[str, float]]:
    """Per round: wall time, the local critical path of the sites' CPU time (train, evaluate), the overhead
    fraction, with the sites' own wall and CPU times. Round 1 runs from the start of ``simulate`` less
    ``startup`` (Ray's own start-up, measured apart: the ServerApp starts at once and waits for the sites
    while Ray comes up)."""
    rows, previous = [], startup
    for r in timing.rounds:
        wall = r.ended - previous
        train = critical_path(r.train_cpu_seconds, cores)
        evaluate = critical_path(r.evaluate_cpu_seconds, cores)
        overhead = wall - train - evaluate
        rows.append({"round": r.round, "wall_s": wall, "local_train_s": train, "local_evaluate_s": evaluate,
                     "overhead_s": overhead, "overhead_fraction": overhead / wall,
                     "site_train_s": list(r.train_seconds), "site_train_cpu_s": list(r.train_cpu_seconds),
                     "site_evaluate_cpu_s": list(r.evaluate_cpu_seconds), "failed_replies": r.failed})
        previous = r.ended
    return rows


@dataclass(frozen=True)
class Prepared:
    sites: Path
    pristine: Path
    """One prepared STATE per site, copied before every run and never used by one."""
    ids: list[str]
    generate_seconds: float
    prepare_seconds: float


def prepare(work: Path, sites: int, patients: int, study: Study, seed: int = 0) -> Prepared:
    """Generate the hospitals and build every site's de-identified cache once, with pseudonym keys derived
    from ``seed`` (``utility.seeded_pseudonym_key``), so every run of the benchmark has the same splits."""
    started = time.perf_counter()
    truth = generate(work / "sites", sites=sites, patients=patients, seed=seed, epsilon=EPSILON)
    generated = time.perf_counter()
    for site in truth.sites:
        seeded_pseudonym_key(work / "pristine" / site.id, seed, site.id)
        Site(work / "sites" / site.id, study, work / "pristine" / site.id).run(build_cache=True)
    ids = [site.id for site in truth.sites]
    return Prepared(work / "sites", work / "pristine", ids, generated - started,
                    time.perf_counter() - generated)


def federated_run(prepared: Prepared, count: int, study: Study, run: Path, *, concurrency: int | None,
                  seed: int) -> tuple[RunTiming, int]:
    """The study over the first ``count`` sites, each with a fresh copy of its prepared STATE;
    ``concurrency`` sites at once (None: the simulation's default)."""
    federation = run / "sites"
    federation.mkdir(parents=True)
    for site in prepared.ids[:count]:
        (federation / site).symlink_to(prepared.sites / site)
        shutil.copytree(prepared.pristine / site, run / "state" / site)
    return timed_simulation(study, federation, run / "state", run / "out", sites=count,
                            concurrency=concurrency, seed=seed)


def pooled_weights(study: Study, prepared: Prepared, seed: int, work: Path) -> dict[str, torch.Tensor]:
    """The centralised DP baseline: all sites' train splits as one dataset, a fresh ledger."""
    torch.manual_seed(seed)
    model = create_model(study)
    ledger = PrivacyLedger(Path(tempfile.mkdtemp(dir=work)) / "ledger.db", study.dp.accountant)
    datasets = [CohortDataset(prepared.pristine / site, study, "train") for site in prepared.ids]
    results = train_pooled(model, datasets, study.dp, ledger=ledger, budget=PrivacySection(
        epsilon=EPSILON, delta=DELTA), run_id=f"pooled-{seed}", seed=seed)
    return results[-1].weights


def held_out(study: Study, weights: dict[str, torch.Tensor], prepared: Prepared) -> float | None:
    return held_out_auroc(study, weights, [prepared.pristine / s for s in prepared.ids]).auroc


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def utility_and_overhead(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Part 1 and 3, one federation per seed (generated with the seed, prepared into fresh STATE, so with
    its own keyed split): each seed's federated run gives the round timings and one AUROC."""
    cores = os.cpu_count() or 1
    rows, runs, federated, pooled, one_per_core, preparations = [], [], [], [], [], []
    startup = ray_startup_seconds()
    for seed in range(args.seeds):
        study = study_for(args.rounds, args.batch, args.accountant, seed)
        prepared = prepare(work / f"federation-{seed}", args.sites, args.patients, study, seed)
        preparations.append(prepared)
        timing, peak = federated_run(prepared, args.sites, study, work / f"run-{seed}",
                                     concurrency=args.concurrency, seed=seed)
        rows += round_breakdown(timing, cores, startup)
        compared, _ = federated_run(prepared, args.sites, study, work / f"run-{seed}-per-core",
                                    concurrency=min(cores, args.sites), seed=seed)
        one_per_core += round_breakdown(compared, cores, startup)
        weights = torch.load(work / f"run-{seed}" / "out" / "model" / MODEL_FILE, weights_only=True)
        federated.append(held_out(study, weights, prepared))
        pooled.append(held_out(study, pooled_weights(study, prepared, seed, work), prepared))
        last = timing.rounds[-1]
        runs.append({"seed": seed, "total_s": timing.finished,
                     "after_last_round_s": timing.finished - last.ended, "peak_mb": peak / MB,
                     "federated_validation_auroc": last.auroc,
                     "held_out_auroc": federated[-1], "pooled_auroc": pooled[-1]})
        print(json.dumps({"progress": "federated run", **runs[-1]}), file=sys.stderr, flush=True)
    fed, pool = _median(federated), _median(pooled)
    fractions = [r["overhead_fraction"] for r in rows]
    walls = {"default": statistics.median(r["wall_s"] for r in rows if r["round"] > 1),
             "one_site_per_core": statistics.median(r["wall_s"] for r in one_per_core if r["round"] > 1)}
    return {
        "overhead_fraction": statistics.median(fractions),
        "overhead_fraction_after_round_1": _median([r["overhead_fraction"] for r in rows if r["round"] > 1]),
        "ray_startup_s": startup,
        "schedule": {"round_wall_s_median_after_round_1": walls,
                     "default_over_one_site_per_core": walls["default"] / walls["one_site_per_core"],
                     "overhead_fraction_one_site_per_core": statistics.median(
                         r["overhead_fraction"] for r in one_per_core)},
        "overhead": {"rounds": rows, "runs": runs,
                     "round_wall_s_median": statistics.median(r["wall_s"] for r in rows),
                     "local_critical_path_s_median": statistics.median(
                         r["local_train_s"] + r["local_evaluate_s"] for r in rows)},
        "federated_over_pooled": fed / pool if fed is not None and pool else None,
        "auroc": {"federated": fed, "pooled": pool, "federated_by_seed": federated, "pooled_by_seed": pooled},
        "prepare": {"generate_s": statistics.median(p.generate_seconds for p in preparations),
                    "prepare_s": statistics.median(p.prepare_seconds for p in preparations)},
    }


def scale(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Part 2: one federation of the largest size, its first N sites per run, smallest run first."""
    sizes = sorted(args.scale)
    study = study_for(args.scale_rounds, args.scale_batch, args.scale_accountant)
    prepared = prepare(work, sizes[-1], args.scale_patients, study)
    result: dict[str, Any] = {}
    for size in sizes:
        timing, peak = federated_run(prepared, size, study, work / f"scale-{size}",
                                     concurrency=args.concurrency, seed=0)
        # round 1 here includes Ray's start-up: a whole run's cost, as ``total_s`` is
        rows = round_breakdown(timing, os.cpu_count() or 1, 0.0)
        result[str(size)] = {
            "total_s": timing.finished, "peak_mb": peak / MB,
            "peak_mb_per_site": peak / MB / size, "round_wall_s": [r["wall_s"] for r in rows],
            "overhead_fraction": _median([r["overhead_fraction"] for r in rows]),
            "site_train_s_median": statistics.median(s for r in timing.rounds for s in r.train_seconds),
            "failed_replies": sum(r["failed_replies"] for r in rows)}
        print(json.dumps({"progress": f"scale {size}", **result[str(size)]}), file=sys.stderr, flush=True)
    small, large = result[str(sizes[0])], result[str(sizes[-1])]
    growth = {"sites": [sizes[0], sizes[-1]], "peak_ratio": large["peak_mb"] / small["peak_mb"],
              "sites_ratio": sizes[-1] / sizes[0],
              "mb_per_added_site": (large["peak_mb"] - small["peak_mb"]) / max(sizes[-1] - sizes[0], 1)}
    growth["at_most_linear"] = growth["peak_ratio"] <= growth["sites_ratio"]
    return {"scale": result, "memory_growth": growth, f"seconds_{sizes[-1]}_sites_total": large["total_s"],
            "scale_prepare": {"sites": sizes[-1], "generate_s": prepared.generate_seconds,
                              "prepare_s": prepared.prepare_seconds}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--patients", type=int, default=120, help="patients per site")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="at most a site's training examples")
    parser.add_argument("--accountant", default="prv", choices=("prv", "rdp"))
    parser.add_argument("--seeds", type=int, default=3, help="federated + pooled runs; AUROCs are medians")
    parser.add_argument("--scale", type=int, nargs="*", default=[10, 30, 100], help="site counts; none: skip")
    parser.add_argument("--scale-patients", type=int, default=40)
    parser.add_argument("--scale-batch", type=int, default=8)
    parser.add_argument("--scale-rounds", type=int, default=1)
    parser.add_argument("--scale-accountant", default="rdp", choices=("prv", "rdp"))
    parser.add_argument("--concurrency", type=int, default=None,
                        help="sites run at once (default: the simulation's, all while at most 2 per core)")
    args = parser.parse_args()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="polyclinic-federation-"))
    try:
        result = utility_and_overhead(args, work / "utility")
        if args.scale:
            result.update(scale(args, work / "scale"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(
        notes=["secagg_over_plain: see benchmarks/secure_aggregation.py (SecAgg+ vs plain at 10 sites)",
               f"scale runs use the {args.scale_accountant} accountant; the overhead/utility runs use "
               f"{args.accountant}"],
        sites=args.sites, patients_per_site=args.patients, rounds=args.rounds, batch_size=args.batch,
        accountant=args.accountant, seeds=args.seeds, epsilon=EPSILON, delta=DELTA,
        concurrency=args.concurrency, cores=os.cpu_count(), scale_patients_per_site=args.scale_patients,
        scale_batch_size=args.scale_batch, scale_rounds=args.scale_rounds,
        seconds=time.perf_counter() - started)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
