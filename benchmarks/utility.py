"""Model utility on the synthetic federation (known truth): held-out AUROC, pooled and per site.

A federation (default 3 sites x 200 patients, seed 0) is generated and prepared in a temporary folder;
every model is trained centrally (``train_pooled`` over all sites' train splits) and scored with
``roc_auc_score`` on all sites' validation patients together (and per site for the best fusion).

* ``fusion_over_best_single``: best fusion variant (all modalities) / best single-modality model. A
  single-modality model is the best variant's architecture with the other modalities' masks set to 0
  in training and in evaluation, so it can only ever see that one modality.
* ``missing_modality_over_best_single``: the best fusion evaluated with one modality masked in every
  validation patient / the best single-modality model among the two modalities left (the model a
  clinician could run instead on what the patient has), the worst of the three masked modalities.
  ``worst_missing_over_best_single`` divides the worst of the same fusion AUROCs by the best single
  modality of all three, the masked one included: bounded by the data, not the model (see
  docs/benchmarks.md), reported beside it.
* ``dp8_over_nondp``, ``dp1_over_nondp``: the study's default variant trained with DP-SGD at
  (epsilon 8 or 1, delta 1e-5; a fresh ledger each) / the same variant and plan without DP.

Each seed is a federation of its own: generated with that seed and prepared into fresh STATE folders
whose pseudonym keys are derived from the seed (:func:`seeded_pseudonym_key`), so each seed has a
patient-level split of its own (the split is by a keyed hash of the pseudonyms) and every run of the
benchmark has the same ones. Every configuration is trained once per seed on that seed's federation
(model init, modality dropout, sampling and DP noise follow the seed too), so the medians over seeds
cover the population, the split and training, and two versions of the code are compared on the same
patients: with fresh random keys, runs of the same code differed by 0.04 in ``dp1_over_nondp``, and one
split for every seed moved AUROCs by a few hundredths. Ratios are taken of the medians. The DP and non-DP
models share one plan (rounds x local epochs, learning rate, batch); by default the plan the default
study ships (5 rounds x 2 epochs, batch 16, Adam 0.04; the DP models clip at 0.1), so the figures are
those of the model the demo trains, without federation. Last line: JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import ConcatDataset, Dataset

from client.cohort_dataset import CohortDataset
from client.site import Site
from modalities.fusion import FusionModel, create_model, predict
from modalities.fusion.model import mask_key
from polyclinic.study import Study, default_study
from polyclinic.synth import generate
from privacy.dp_settings import DPSettings
from privacy.dp_training import train_pooled
from privacy.keys import keys_dir, secret_path
from privacy.ledger import PrivacyLedger
from privacy.pseudonym import PSEUDONYM_KEY

MODALITIES = ("imaging", "records", "genomics")
VARIANTS = ("concat", "gated", "perceiver", "late")
DELTA = 1e-5
DP_EPSILONS = (8.0, 1.0)


@dataclass(frozen=True)
class Federation:
    train: list[Dataset]
    validation: dict[str, Dataset]
    """Site id -> that site's validation patients."""


@dataclass(frozen=True)
class Epsilon:
    """The (epsilon, delta) budget ``privacy.accounting.Budget`` asks for."""

    epsilon: float
    delta: float = DELTA


class Masked(Dataset):
    """``dataset`` with the listed modalities' masks set to 0 in every sample: the model ignores them."""

    def __init__(self, dataset: Dataset, hidden: Sequence[str]) -> None:
        self.dataset, self.hidden = dataset, tuple(hidden)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = dict(self.dataset[index])
        for name in self.hidden:
            sample[mask_key(name)] = torch.zeros_like(sample[mask_key(name)])
        return sample


def seeded_pseudonym_key(state: Path, seed: int, site: str) -> None:
    """Write ``state``'s pseudonym key as a hash of ``seed`` and ``site``, before the site first runs: the
    split follows the key, so the benchmark's splits repeat from run to run. For synthetic benchmark
    hospitals only: a real site's key must be secret and random (:mod:`privacy.keys`)."""
    keys_dir(state)
    path = secret_path(state, PSEUDONYM_KEY)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(hashlib.sha256(f"benchmarks/utility.py\0{seed}\0{site}".encode()).digest())


def prepare(work: Path, study: Study, sites: int, patients: int, seed: int = 0) -> Federation:
    """Generate the hospitals, run each site's pipeline into its own STATE, load its two splits."""
    truth = generate(work / "sites", sites=sites, patients=patients, seed=seed)
    train, validation = [], {}
    for site in truth.sites:
        state = work / "state" / site.id
        seeded_pseudonym_key(state, seed, site.id)
        Site(work / "sites" / site.id, study, state).run(build_cache=True)
        train.append(CohortDataset(state, study, "train"))
        validation[site.id] = CohortDataset(state, study, "validation")
    return Federation(train, validation)


def batch_of(dataset: Dataset) -> dict[str, torch.Tensor]:
    """Every sample of ``dataset`` stacked into one batch."""
    samples = [dataset[i] for i in range(len(dataset))]
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def auroc(model: FusionModel, dataset: Dataset) -> float:
    batch = batch_of(dataset)
    probability = predict(model, batch).probability
    return float(roc_auc_score(batch["label"].numpy(), probability.numpy()))


def others(*kept: str) -> tuple[str, ...]:
    return tuple(m for m in MODALITIES if m not in kept)


class Bench:
    """Trains and scores configurations of one study on one federation with one training plan."""

    def __init__(self, study: Study, federation: Federation, plan: DPSettings, work: Path) -> None:
        self.study, self.federation, self.plan, self.work = study, federation, plan, work
        self.pooled_validation = ConcatDataset(list(federation.validation.values()))

    def train(self, variant: str, seed: int, *, hidden: Sequence[str] = (),
              epsilon: float | None = None) -> FusionModel:
        """A ``variant`` model trained on all sites' train splits with ``hidden`` modalities masked out;
        with ``epsilon``, under DP-SGD with a fresh ledger."""
        fusion = self.study.fusion.model_copy(update={"fusion": variant, "seed": seed})
        torch.manual_seed(seed)
        model = create_model(self.study, fusion)
        settings = self.plan.model_copy(update={"enabled": epsilon is not None})
        private = {}
        if epsilon is not None:
            fresh = Path(tempfile.mkdtemp(dir=self.work)) / "ledger.sqlite"
            ledger = PrivacyLedger(fresh, settings.accountant)
            private = {"ledger": ledger, "budget": Epsilon(epsilon)}
        datasets = [Masked(d, hidden) for d in self.federation.train]
        results = train_pooled(model, datasets, settings, seed=seed, run_id=f"{variant}-{seed}", **private)
        model.load_state_dict(results[-1].weights)
        return model

    def score(self, model: FusionModel, hidden: Sequence[str] = ()) -> float:
        return auroc(model, Masked(self.pooled_validation, hidden))

    def per_site(self, model: FusionModel) -> dict[str, float]:
        return {site: auroc(model, dataset) for site, dataset in self.federation.validation.items()}


def median_over(seeds: Sequence[int], fn: Callable[[int], float]) -> float:
    return statistics.median(fn(seed) for seed in seeds)


def run(benches: dict[int, Bench]) -> dict[str, object]:
    """``benches``: seed -> that seed's federation and plan."""
    seeds = list(benches)

    def median(fn: Callable[[Bench, int], float]) -> float:
        return median_over(seeds, lambda s: fn(benches[s], s))

    models = {(v, s): benches[s].train(v, s) for v in VARIANTS for s in seeds}
    fusion = {v: median(lambda b, s, v=v: b.score(models[v, s])) for v in VARIANTS}
    best = max(fusion, key=fusion.__getitem__)
    single = {m: median(lambda b, s, m=m: b.score(b.train(best, s, hidden=others(m)), others(m)))
              for m in MODALITIES}
    missing = {m: median(lambda b, s, m=m: b.score(models[best, s], (m,))) for m in MODALITIES}
    default = benches[seeds[0]].study.fusion.fusion
    dp = {f"eps{e:g}": median(lambda b, s, e=e: b.score(b.train(default, s, epsilon=e))) for e in DP_EPSILONS}
    best_single = max(single.values())
    per_site = {site: statistics.median(benches[s].per_site(models[best, s])[site] for s in seeds)
                for site in benches[seeds[0]].federation.validation}
    return {
        "fusion_over_best_single": fusion[best] / best_single,
        "missing_modality_over_best_single": min(missing[m] / max(single[o] for o in others(m))
                                                 for m in MODALITIES),
        "worst_missing_over_best_single": min(missing.values()) / best_single,
        "dp8_over_nondp": dp["eps8"] / fusion[default],
        "dp1_over_nondp": dp["eps1"] / fusion[default],
        "auroc": {"fusion": fusion, "single_modality": single, "best_fusion_missing_at_test": missing,
                  "dp": {**dp, "nondp": fusion[default]}},
        "best_fusion": best, "default_fusion": default, "best_fusion_auroc_per_site": per_site,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--patients", type=int, default=200, help="patients per site")
    parser.add_argument("--seeds", type=int, default=3,
                        help="federations, each trained with its own seed; AUROCs are medians over them")
    study = default_study()
    shipped = study.dp
    parser.add_argument("--epochs", type=int, default=shipped.rounds * shipped.local_epochs,
                        help="epochs over the pooled train set (default: the default study's plan)")
    parser.add_argument("--rounds", type=int, default=shipped.rounds,
                        help="rounds; epochs are split evenly over them")
    parser.add_argument("--lr", type=float, default=shipped.learning_rate)
    parser.add_argument("--batch", type=int, default=shipped.batch_size)
    parser.add_argument("--max-grad-norm", type=float, default=shipped.max_grad_norm,
                        help="per-example clipping norm of the DP models")
    args = parser.parse_args()
    started = time.perf_counter()
    plan = shipped.model_copy(update={
        "rounds": args.rounds, "local_epochs": max(args.epochs // args.rounds, 1),
        "learning_rate": args.lr, "batch_size": args.batch, "max_grad_norm": args.max_grad_norm})
    work = Path(tempfile.mkdtemp(prefix="polyclinic-utility-"))
    try:
        federations = {seed: prepare(work / f"seed-{seed}", study, args.sites, args.patients, seed)
                       for seed in range(args.seeds)}
        prepared = time.perf_counter() - started
        result = run({seed: Bench(study, federation, plan, work) for seed, federation in federations.items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(
        sites=args.sites, patients_per_site=args.patients, seeds=args.seeds,
        train_patients=[sum(len(d) for d in f.train) for f in federations.values()],
        validation_patients=[sum(len(d) for d in f.validation.values()) for f in federations.values()],
        rounds=plan.rounds, local_epochs=plan.local_epochs, learning_rate=plan.learning_rate,
        batch_size=plan.batch_size, optimizer=plan.optimizer, max_grad_norm=plan.max_grad_norm,
        accountant=plan.accountant, delta=DELTA, threads=torch.get_num_threads(),
        prepare_seconds=prepared, seconds=time.perf_counter() - started,
    )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
