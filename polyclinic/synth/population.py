"""The generative model: who the patients are, who has the disease, and how strongly each modality
sees it.

A latent label drives three independent per-modality signals, so each modality alone is a moderate
predictor and the modalities together are clearly better: the situation multimodal fusion is for.
Sites differ in prevalence and in the mix of sex, age, race and smoking, so the federation is not
i.i.d. and subgroup metrics have something to show. docs/synthetic-hospitals.md states the model.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.people import Identity, draw_identity, draw_mrns
from polyclinic.synth.profiles import SiteProfile
from polyclinic.synth.seeding import uuid4

INDEX_DATE = dt.date.fromisoformat(vocab.INDEX_DATE)
DELTAS: dict[str, float] = {"imaging": 1.1, "labs": 1.2, "genomics": 1.1}
"""Mean shift of each modality's signal between positives and negatives (signal noise has sd 1):
a single modality then has AUROC Phi(delta / sqrt 2), about 0.78..0.80, all three about 0.93."""
AGE_LOG_ODDS_PER_DECADE = 0.3
SMOKING_LOG_ODDS = 0.5
IMAGING_FRACTION = 0.9
GENOMICS_FRACTION = 0.9
REFUTED_FRACTION = 0.03
CONSENT_MIX: dict[str, float] = {"permit": 0.85, "deny": 0.06, "inactive": 0.04, "none": 0.05}
NODULE_THRESHOLD = 0.5
"""A nodule is visible when the imaging signal exceeds this; its diameter grows with the signal."""
NODULE_MM_PER_SIGNAL = 3.5
NODULE_MIN_MM, NODULE_MAX_MM = 3.0, 15.0

Consent = Literal["permit", "deny", "inactive", "none"]
ImagingState = Literal["series", "none", "truncated"]


@dataclass(frozen=True)
class Patient:
    """One synthetic patient at one site: identity, sensitive attributes, label and latent signals."""

    identity: Identity
    record_id: str  # FHIR Patient.id: the MRN at some sites, a UUID at others
    female: bool
    age: int  # at the index date
    race: str  # vocabulary.RACES code
    smoker: bool
    comorbidities: tuple[str, ...]  # vocabulary.COMORBIDITIES codes
    label: int
    signals: dict[str, float]  # modality -> latent signal s_m = DELTAS[m] * label + N(0, 1)
    imaging: ImagingState
    text_report: bool  # also has a Basic Text SR next to its CT series
    has_genomics: bool
    consent: Consent
    refuted_target: bool  # a negative whose chart holds a refuted target Condition

    @property
    def nodule_mm(self) -> float:
        """Diameter of the lung nodule the CT shows (0 when none is visible)."""
        s = self.signals["imaging"]
        if s <= NODULE_THRESHOLD:
            return 0.0
        return round(min(NODULE_MIN_MM + NODULE_MM_PER_SIGNAL * (s - NODULE_THRESHOLD), NODULE_MAX_MM), 2)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _birth_date(rng: np.random.Generator, age: int) -> dt.date:
    """A birth date that makes the patient exactly ``age`` years old at the index date."""
    anniversary = INDEX_DATE.replace(year=INDEX_DATE.year - age)
    return anniversary - dt.timedelta(days=int(rng.integers(1, 365)))


def _comorbidities(rng: np.random.Generator, *, age: int, smoker: bool, label: int) -> tuple[str, ...]:
    """COPD follows smoking and disease, diabetes and hypertension follow age; smokers are coded as such."""
    chances = {
        "13645005": 0.08 + 0.15 * smoker + 0.10 * label,
        "44054006": 0.10 + 0.004 * (age - 60),
        "38341003": 0.25 + 0.010 * (age - 60),
    }
    codes = [code for code, p in chances.items() if rng.random() < min(max(p, 0.0), 1.0)]
    return tuple(codes + (["77176002"] if smoker else []))


def sample_population(profile: SiteProfile, n: int, rng: np.random.Generator) -> list[Patient]:
    """``n`` patients of one site. Exactly one patient with imaging gets a truncated file instead of a
    series and, at a site whose profile writes text reports, another one also gets a Basic Text SR."""
    if n < 2:
        raise ValueError(f"a site needs at least 2 patients to carry its bad files, got {n}")
    mrns = draw_mrns(rng, n, prefix=profile.mrn_prefix, digits=profile.mrn_digits)
    races, weights = list(profile.race_mix), list(profile.race_mix.values())
    base = _logit(profile.prevalence)
    patients = []
    for mrn in mrns:
        female = bool(rng.random() < profile.female_fraction)
        age = int(np.clip(round(rng.normal(profile.age_mean, profile.age_sd)), 30, 90))
        smoker = bool(rng.random() < profile.smoking_rate)
        logit = (
            base
            + AGE_LOG_ODDS_PER_DECADE * (age - profile.age_mean) / 10
            + SMOKING_LOG_ODDS * (smoker - profile.smoking_rate)
        )
        label = int(rng.random() < 1 / (1 + math.exp(-logit)))
        signals = {m: round(float(delta * label + rng.normal()), 6) for m, delta in DELTAS.items()}
        identity = draw_identity(rng, mrn=mrn, female=female, birth_date=_birth_date(rng, age))
        patients.append(
            Patient(
                identity=identity,
                record_id=mrn if profile.patient_id_is_mrn else uuid4(rng),
                female=female,
                age=age,
                race=str(rng.choice(races, p=weights)),
                smoker=smoker,
                comorbidities=_comorbidities(rng, age=age, smoker=smoker, label=label),
                label=label,
                signals=signals,
                imaging="series" if rng.random() < IMAGING_FRACTION else "none",
                text_report=False,
                has_genomics=profile.genomics is not None and bool(rng.random() < GENOMICS_FRACTION),
                consent=str(rng.choice(list(CONSENT_MIX), p=list(CONSENT_MIX.values()))),
                refuted_target=label == 0 and bool(rng.random() < REFUTED_FRACTION),
            )
        )
    return _plant_bad_imaging(patients, profile, rng)


def _plant_bad_imaging(
    patients: list[Patient], profile: SiteProfile, rng: np.random.Generator
) -> list[Patient]:
    """Choose who carries the truncated file and, where the profile has one, the text report."""
    with_images = [i for i, p in enumerate(patients) if p.imaging == "series"]
    if len(with_images) < 2:
        with_images = list(range(len(patients)))
    chosen = rng.choice(with_images, size=2, replace=False)
    truncated, reported = int(chosen[0]), int(chosen[1])
    out = list(patients)
    out[truncated] = replace(patients[truncated], imaging="truncated")
    if profile.text_report:
        out[reported] = replace(patients[reported], imaging="series", text_report=True)
    return out
