"""Site pipeline throughput, measured side by side in one run on synthetic hospitals.

* ``prepare_over_raw``: throughput of the imaging path of ``site prepare`` (header discovery,
  fingerprinting, decoding, PS3.15 de-identification, MONAI transforms, cache write) with its default
  processes (this one and ``workers - 1`` forked), divided by the throughput of bare
  ``pydicom.dcmread(f).pixel_array`` in one process over the same DICOM files. Target >= 0.7.
  ``prepare_over_raw_one_worker`` is the same pipeline in one process, the like-for-like per-core cost;
  ``prepare_over_raw_<site>`` is the ratio per site, since sites with one file per image and sites with
  multi-slice series differ: prepare decodes only the central frame of a series (the one the model
  sees), raw decodes every file.
* ``uncached_over_cached``: an epoch that reads, de-identifies and featurises every cohort item from
  the raw files, divided by an epoch that loads the same features from the cache; per site kind
  (``..._compressed`` on the RLE site, ``..._uncompressed`` on the others). Targets >= 20x / >= 5x.
* ``ct_prepare_over_raw``: the same ratio on a site of diagnostic CT series, as hospitals hold them
  (``--ct-patients`` x ``--ct-slices`` slices of 512x512, 16-bit, from the synthetic generator's
  multi-slice profile with a larger matrix and more slices): where a series has many slices, decoding
  only the central one is what the ratio measures.
* ``site_prepare_seconds``: the whole ``Site.run(build_cache=True)`` per site, records and genomics
  included, for context.

Runs are interleaved and repeated; medians are reported. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pydicom

from client.cache import FeatureCache
from client.cohort import CohortManifest
from client.item_pipeline import ItemPipeline
from client.parallel import Task, default_workers, featurise, file_mapper
from client.site import MODALITY_ORDER, Site
from polyclinic.study import default_study
from polyclinic.synth import generate
from polyclinic.synth.dicom_writer import write_imaging
from polyclinic.synth.population import sample_population
from polyclinic.synth.profiles import profile_for
from privacy.pseudonym import Pseudonymiser


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _raw_decode(files: list[Path]) -> None:
    for path in files:
        try:
            _ = pydicom.dcmread(path).pixel_array
        except Exception:  # noqa: BLE001  (the planted broken files fail here too: same files both sides)
            pass


def _imaging_prepare(site: Site, state: Path, workers: int) -> int:
    """The imaging share of ``site prepare``: discover, read, de-identify, featurise, write the cache."""
    if state.exists():
        shutil.rmtree(state)
    pseudonymiser = Pseudonymiser.for_state(state)
    modality = site.modalities["imaging"]
    pipelines = {"imaging": ItemPipeline(modality, site.recipe("imaging"), FeatureCache(state / "cache"))}
    tasks = [Task(pseudonymiser.patient(item.patient_id), "imaging", item)
             for item in modality.discover(site.root / modality.folder, file_mapper(workers)).items]
    index_date = site.study.records.index_date
    return sum(d.outcome.features is not None
               for d in featurise(tasks, pipelines, pseudonymiser, index_date, workers))


def _diagnostic_ct_site(root: Path, patients: int, slices: int) -> None:
    """``root/imaging``: the multi-slice site profile's CT series at 512x512 and ``slices`` slices."""
    profile = profile_for(1)
    scanner = replace(profile.scanner, size=512, spacing_mm=0.7, slices=slices, slice_thickness_mm=1.25)
    ct = replace(profile, scanner=scanner, text_report=False)
    population = sample_population(ct, patients, np.random.default_rng(0))
    write_imaging(root / "imaging", population, ct, np.random.default_rng(1))


def _epoch(site: Site, manifest: CohortManifest, cache: FeatureCache | None) -> int:
    """One pass over the cohort's items: from the cache when given, else from the raw files."""
    if cache is not None:
        return sum(len(cache.load(key)) for p in manifest.patients for key in p.entries.values())
    pseudonymiser = Pseudonymiser.for_state(site.state)
    pipelines = {n: ItemPipeline(site.modalities[n], site.recipe(n), None) for n in MODALITY_ORDER}
    wanted = {p.pseudonym: p.entries for p in manifest.patients}
    tasks = []
    for name in MODALITY_ORDER:
        modality = site.modalities[name]
        folder = site.root / modality.folder
        items = modality.discover(folder).items if folder.is_dir() else []
        tasks += [Task(pseudonym, name, item) for item in items
                  if name in wanted.get(pseudonym := pseudonymiser.patient(item.patient_id), {})]
    return sum(d.outcome.features is not None
               for d in featurise(tasks, pipelines, pseudonymiser, site.study.records.index_date, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ct-patients", type=int, default=12)
    parser.add_argument("--ct-slices", type=int, default=40)
    args = parser.parse_args()
    study = default_study()
    work = Path(tempfile.mkdtemp(prefix="polyclinic-bench-"))
    try:
        truth = generate(work / "sites", sites=3, patients=args.patients, seed=0)
        result: dict[str, object] = {"patients_per_site": args.patients, "repeats": args.repeats}
        workers = default_workers()
        sites = {t.id: Site(work / "sites" / t.id, study, work / "state" / t.id) for t in truth.sites}
        files = {sid: sorted((s.root / "imaging").rglob("*.dcm")) for sid, s in sites.items()}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for sid, site in sites.items():
                for name, run in (("raw", partial(_raw_decode, files[sid])),
                                  ("prepare", partial(_imaging_prepare, site, work / "img" / sid, workers)),
                                  ("prepare1", partial(_imaging_prepare, site, work / "img" / sid, 1))):
                    times.setdefault((name, sid), []).append(_timed(run))
        median = {key: statistics.median(values) for key, values in times.items()}
        raw, prep, prep1 = (sum(median[k, sid] for sid in sites) for k in ("raw", "prepare", "prepare1"))
        result.update(dicom_files=sum(len(f) for f in files.values()), workers=workers, raw_seconds=raw,
                      prepare_imaging_seconds=prep, prepare_imaging_seconds_one_worker=prep1,
                      prepare_over_raw=raw / prep, prepare_over_raw_one_worker=raw / prep1)
        for sid in sites:
            result[f"prepare_over_raw_{sid}"] = median["raw", sid] / median["prepare", sid]
        _diagnostic_ct_site(work / "ct", args.ct_patients, args.ct_slices)
        ct_site = Site(work / "ct", study, work / "ct-state")
        ct_files = sorted((work / "ct" / "imaging").rglob("*.dcm"))
        ct_raw, ct_prep = [], []
        for _ in range(args.repeats):
            ct_raw.append(_timed(partial(_raw_decode, ct_files)))
            ct_prep.append(_timed(partial(_imaging_prepare, ct_site, work / "img" / "ct", workers)))
        result.update(ct_dicom_files=len(ct_files), ct_raw_seconds=statistics.median(ct_raw),
                      ct_prepare_seconds=statistics.median(ct_prep),
                      ct_prepare_over_raw=statistics.median(ct_raw) / statistics.median(ct_prep))
        site_seconds = {}
        for sid, site in sites.items():
            site_seconds[sid] = _timed(partial(site.run, build_cache=True, workers=workers))
        result["site_prepare_seconds"] = site_seconds
        ratios: dict[str, list[float]] = {"compressed": [], "uncompressed": []}
        for sid, site in sites.items():
            manifest = CohortManifest.load(site.state)
            kind = "compressed" if _is_compressed(files[sid]) else "uncompressed"
            uncached, cached = [], []
            for _ in range(args.repeats):
                uncached.append(_timed(partial(_epoch, site, manifest, None)))
                cached.append(_timed(partial(_epoch, site, manifest, site.cache)))
            ratio = statistics.median(uncached) / statistics.median(cached)
            result[f"uncached_over_cached_{sid}"] = ratio
            ratios[kind].append(ratio)
        result["uncached_over_cached_compressed"] = min(ratios["compressed"], default=None)
        result["uncached_over_cached_uncompressed"] = min(ratios["uncompressed"], default=None)
        result["uncached_over_cached"] = min(r for rs in ratios.values() for r in rs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, sort_keys=True))


def _is_compressed(files: list[Path]) -> bool:
    for path in files:
        try:
            return pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
        except Exception:  # noqa: BLE001  (not a DICOM file: look at the next)
            continue
    return False


if __name__ == "__main__":
    main()
