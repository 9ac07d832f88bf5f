"""The study: one typed ``study.toml`` that every site and the coordinator share.

Parsed once at the boundary into frozen settings; unknown keys are errors that name the key.
The built-in default is the synthetic federation's study, so every command works without a file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import Field

from modalities.fusion.settings import FusionSettings
from modalities.genomics.settings import GenomicsSettings
from modalities.imaging.settings import ImagingSettings
from modalities.records.settings import RecordsSettings
from modalities.settings import Settings, read_toml, validate_config
from polyclinic.synth import vocabulary as vocab
from privacy.dp_settings import DPSettings
from server.settings import FederationSettings


class SplitSettings(Settings):
    """Patient-level stratified split: a patient's items never straddle train and validation."""

    validation_fraction: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 0


class Study(Settings):
    name: str = "synthetic-lung"
    imaging: ImagingSettings = ImagingSettings()
    records: RecordsSettings
    genomics: GenomicsSettings
    split: SplitSettings = SplitSettings()
    fusion: FusionSettings = FusionSettings()
    dp: DPSettings = DPSettings()
    federation: FederationSettings = FederationSettings()


SMALL_SITE_FUSION = FusionSettings(fusion="late", d_model=8, heads=2, latents=2, records_tokens=1,
                                   pathway_size=16, image_grid=1, freeze_image_features=True,
                                   linear_records=True)
"""The model the default study trains: ``late`` fusion (one logit per modality, summed over those a patient
has), d-model 8, imaging filters fixed, genomics pathways as activity scores, one image token, and the
records as one linear term beside the fusion: 421 trained weights instead of 47,000 (968 before the linear
records term, 1,988 before the genomics encoder scored pathways; ``modalities/genomics/encoder.py`` has
why; 1,128 before the two token counts below).

Records as one linear term (``linear_records``): the record columns are on fixed clinical scales and each
adds to the log-odds on its own, so one weight per column does what the records encoder (21 -> 16 -> 8, then
the fusion's hidden layer and head: 568 weights) did, with 22 weights for DP-SGD to noise. Under epsilon 1
the records term was where the model lost (records alone 0.755 without DP, 0.645 at epsilon 1). Paired on
the same federations (2026-12-05, eighth session, in-process, 3 x 200, seeds 100-119 apart from the
benchmark's, held-out AUROC medians), encoder -> linear term:
- pooled, 12 seeds: non-DP 0.828 -> 0.855, epsilon 8 0.825 -> 0.849, epsilon 1 0.783 -> 0.829 (higher in 11
  seeds of 12 at every budget but epsilon 8, higher in all 12);
- FedAvg over each site's own DPTrainer and budget, 8 seeds: non-DP 0.839 -> 0.852, epsilon 8 0.798 ->
  0.844, epsilon 1 0.712 -> 0.766 (higher in all 8 seeds at every budget).
At the demo's size (3 x 120, ~10 DP steps a site per round) it does worse at epsilon 8: ``federation.py``
federated 0.810 -> 0.791 (3 seeds, lower in each), in-process FedAvg lower in 6 seeds of 8. The linear term
learns slowly in short rounds (``modalities/fusion/late.py``); ``docs/benchmarks.md`` has the figures.
What it cannot learn is an interaction between record columns (a lab that matters only with a comorbidity);
a study that needs one, or has such small sites, sets ``linear-records = false``.

``late`` averages each modality's tokens before its term, so token counts that only matter to attention
cost it. Two records tokens were two linear projections of one hidden layer, and their average is one
projection: 136 more weights for DP-SGD to noise and nothing more the model could express. Four image
tokens (a 2x2 grid, each cell's strongest blob) averaged a nodule's answer with three cells of background;
one token is the strongest blob in the whole image, and 24 fewer weights. Paired on the same federations
(2026-12-05, in-process, the shipped plan, held-out AUROC, medians), before / one records token / and one
image token:
- pooled, 12 seeds: epsilon 1 0.732 / 0.765 / 0.764; epsilon 8 0.812 / 0.808 / 0.828; non-DP 0.803 /
  0.824 / 0.803.
- federated (FedAvg over each site's own DPTrainer and budget, 8 seeds): epsilon 1 0.640 / 0.655 / 0.754;
  epsilon 8 0.784 / 0.795 / 0.834; non-DP 0.848 / 0.832 / 0.832.
``docs/benchmarks.md`` (utility) has the benchmark runs and the training plans tried beside them.

DP-SGD adds noise to every trained weight while a site of ~75 training patients brings little signal, so
small models win here. ``late`` against ``concat`` (an MLP across modalities, 2,209 weights), 2026-12-05,
each seed a federation of its own (3 sites, 5 rounds x 2 epochs, Adam 0.04, held-out AUROC):
- ``benchmarks/utility.py`` (200 patients a site, pooled, 7 seeds), epsilon 1 / non-DP: 0.946, 0.964 and
  0.846 in three runs, against 0.872 and 0.920 for concat in earlier runs. Paired on 12 fixed federations
  (in-process, one split each): 0.969 (epsilon 1 AUROC 0.774) against concat's 0.899 (0.731).
- ``benchmarks/federation.py`` (120 a site, epsilon 8, 5 seeds): federated 0.801 against 0.793 (one run each).
- ``modalities/fusion/late.py`` says why its per-modality terms have a hidden layer.
Splits come from fresh keys in every run, so runs of the same code differ by about 0.04 in these ratios.
The synthetic modalities are independent given the label, the case where summed logits are the right
form; data whose modalities interact would want ``concat`` or an attention variant, and sites with thousands
of patients can afford their weights. Earlier: the 47k-weight perceiver ended below chance at epsilon 8
(0.37-0.45) on 3 x 120 patients; the imaging encoder's fixed blob filters replaced a random CNN that carried
no imaging signal (imaging alone 0.52 before, 0.66 after).

Modality dropout stays at the fusion default, 0.15. At 0.3 the pooled fusion did better without the
records at test time (``benchmarks/utility.py``, 2026-12-05, concat, records hidden / imaging alone: 0.993
and 1.005 in two runs against 0.948 at 0.15), but the federated model, the one this study is for, did
worse: ``benchmarks/federation.py`` (3 seeds each) held-out AUROC 0.760 at 0.3 against 0.816 at 0.15,
lower in every seed, with pooled 0.796 and 0.797."""


SMALL_SITE_DP = DPSettings(local_epochs=2, learning_rate=0.04, max_grad_norm=0.1)
"""The default study's plan: 5 rounds x 2 local epochs, batch 16, Adam at 0.04, per-example gradients clipped
to norm 0.1.

Clipping: DP-SGD's noise is proportional to the clipping norm. The default model's per-example gradient
norms are 1.5-3.2 at initialisation (10th-90th percentile) and 0.1-2.7 once trained (median 0.8), so at a
norm of 1 most trained examples' gradients sat below the norm the noise was sized for; at 0.1 nearly every
example is clipped to the same length and counts fully against the noise. Adam's steps do not depend on
the gradient's scale, so the learning rate stays as it was. Paired on the same federations (in-process,
held-out AUROC medians, 2026-12-05, seventh session): pooled, 10 seeds, epsilon 1 0.776 -> 0.778 and
epsilon 8 0.821 -> 0.827 (0.25 and 0.05: 0.774 / 0.825 and 0.779 / 0.829; another 10 seeds at 0.25:
epsilon 1 0.780 -> 0.798, higher in 9 and level in 1); FedAvg over each site's own budget, 3 x 200, 6
seeds: epsilon 1 0.738 -> 0.757, epsilon 8 0.830 -> 0.832; 3 x 120, 8 seeds: epsilon 8 0.829 -> 0.832
(higher in 4 seeds, lower in 4). ``docs/benchmarks.md`` (utility) has these and the benchmark's runs.

A site of ~80 training patients takes about 10 noisy steps a round, and DP noise dominates each one, so Adam
(which moves every weight by about the learning rate per step) needs a larger rate than without DP. In-process
FedAvg over the same DPTrainer, 3 sites x 120 patients, epsilon 8, held-out AUROC, medians of 5 seeds
(2026-12-05): lr 0.01 federated 0.76 (pooled DP 0.84, 3 seeds); lr 0.02 federated 0.86, pooled 0.87; lr 0.04
federated 0.88, pooled 0.86, higher than lr 0.02 in every seed; without DP (lr 0.02) federated 0.89, pooled
0.85; one local epoch instead of two, lr 0.02: federated 0.78."""


def _panel_reference() -> dict[str, float]:
    """The public reference profile of the default gene panel: gene values are normalised against it."""
    atlas = dict(zip(vocab.GENES, vocab.reference_expression(), strict=True))
    return {gene: atlas[gene] for gene in vocab.GENE_PANEL}


def default_study() -> Study:
    """The synthetic benchmark's study: lung cancer from CT, labs, comorbidities and a 64-gene panel."""
    return Study(
        fusion=SMALL_SITE_FUSION,
        dp=SMALL_SITE_DP,
        records=RecordsSettings(
            target_codes=vocab.TARGET_CODES,
            labs=tuple(vocab.LABS),
            comorbidities=tuple(f"{vocab.SNOMED}|{code}" for code in vocab.COMORBIDITIES),
            index_date=dt.date.fromisoformat(vocab.INDEX_DATE),
        ),
        genomics=GenomicsSettings(patient_column=vocab.GENOMICS_PATIENT_COLUMN, gene_panel=vocab.GENE_PANEL,
                                  reference=_panel_reference()),
    )


def load_study(path: Path | None) -> Study:
    """Read ``study.toml``; sections left out keep the default study's values (a study with its own gene
    panel gets no reference profile unless it states one)."""
    if path is None:
        return default_study()
    data = read_toml(path)
    base = default_study().model_dump(by_alias=True)
    if "gene-panel" in data.get("genomics", {}):  # the default reference profile is the default panel's
        base["genomics"]["reference"] = None
    merged = {**base, **{k: ({**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v)
                         for k, v in data.items()}}
    return validate_config(Study, merged, path)
