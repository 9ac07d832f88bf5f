"""``polyclinic demo``: synthetic hospitals through the whole site pipeline, offline.

Today it synthesises the hospitals, then checks and prepares each site's de-identified cohort and
prints what every site found; federated training joins it once the model and the federation exist.
"""

from __future__ import annotations

import argparse
import shutil
import time

from rich.console import Console
from rich.table import Table

from client.parallel import default_workers
from client.site import MODALITY_ORDER, Site
from client.site_report import SiteReport
from polyclinic.console import print_json, progress_bar
from polyclinic.logs import site_log
from polyclinic.study import load_study
from polyclinic.synth import generate


def run_demo(args: argparse.Namespace, *, as_json: bool) -> int:
    started = time.perf_counter()
    sites_dir, state_dir = args.out / "sites", args.out / "state"
    for folder in (sites_dir, state_dir):
        if folder.exists():
            shutil.rmtree(folder)
    truth = generate(sites_dir, sites=args.sites, patients=args.patients, seed=args.seed)
    study = load_study(args.study)
    reports: list[SiteReport] = []
    for site_truth in truth.sites:
        site = Site(sites_dir / site_truth.id, study, state_dir / site_truth.id)
        with site_log(site.state), progress_bar(not as_json) as progress:
            reports.append(site.run(build_cache=True, progress=progress, workers=default_workers()))
    seconds = time.perf_counter() - started
    if as_json:
        print_json({"sites": {r.site_id: r.counts() for r in reports}, "seconds": round(seconds, 2),
                     "patients_included": sum(r.patients.included for r in reports)})
    else:
        _render(reports, seconds, Console())
    return 0


def _render(reports: list[SiteReport], seconds: float, console: Console) -> None:
    table = Table(title="synthetic federation: prepared sites", title_justify="left")
    for column in ("site", "patients", "no consent", "used", "all three", "positive", "rejected"):
        table.add_column(column, justify="left" if column == "site" else "right", no_wrap=True)
    for r in reports:
        p = r.patients
        table.add_row(r.site_id, str(p.discovered), str(sum(p.consent_excluded.values())), str(p.included),
                      str(p.by_combination.get("+".join(MODALITY_ORDER), 0)),
                      "n/a" if p.prevalence is None else f"{p.prevalence:.0%}",
                      str(sum(sum(m.rejected.values()) for m in r.modalities.values())))
    console.print(table)
    console.print(f"done in {seconds:.1f} s; de-identified caches under the state folders")
