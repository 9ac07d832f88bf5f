"""Laboratory results: what the labs signal looks like in a patient's chart over time.

CRP, LDH and CEA rise with the latent labs signal; the other panel labs are noise. Values are
log-normal, as lab values are. Earlier visits carry a weaker signal than the last one before the
index date (the disease develops), so a reader must take the latest value before the index date;
every lab also has one result after the index date with a wild value that carries no signal at all,
so a reader that forgets the cut-off loses the signal instead of silently keeping it.

A site may report a lab in SI units (:data:`SI_UNITS`, creatinine in umol/L under its own LOINC code
14682-9, as European laboratories do): the same draws, converted and rounded in that unit, so a reader
that does not convert units sees one site's creatinine some 88 times higher than the others'.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from polyclinic.synth import vocabulary as vocab
from polyclinic.synth.population import INDEX_DATE, Patient


@dataclass(frozen=True)
class LabModel:
    median: float  # healthy median, in the unit of vocabulary.LABS
    log_sd: float  # spread of log(value) between patients
    loading: float  # share of the labs signal in the patient's level (0 = pure noise)
    decimals: int


LAB_MODELS: dict[str, LabModel] = {
    "1988-5": LabModel(median=3.0, log_sd=0.70, loading=0.75, decimals=1),  # CRP
    "2532-0": LabModel(median=180.0, log_sd=0.25, loading=0.75, decimals=0),  # LDH
    "2039-6": LabModel(median=2.0, log_sd=0.50, loading=0.80, decimals=2),  # CEA
    "6690-2": LabModel(median=7.0, log_sd=0.25, loading=0.0, decimals=1),  # leukocytes
    "718-7": LabModel(median=14.0, log_sd=0.08, loading=0.0, decimals=1),  # haemoglobin
    "2160-0": LabModel(median=0.9, log_sd=0.20, loading=0.0, decimals=2),  # creatinine
}
SIGNAL_LABS = tuple(code for code, model in LAB_MODELS.items() if model.loading > 0)
VISIT_NOISE = 0.3  # visit-to-visit variation, in units of log_sd
EARLIEST_WEIGHT = 0.4  # share of the patient's signal visible at the first visit
WILD_FACTOR = (15.0, 40.0)  # the post-index result is this many times the healthy median
FIRST_VISIT = dt.date(2023, 1, 1)
LAST_WILD_DAY = 180


@dataclass(frozen=True)
class Measurement:
    code: str
    value: float
    unit: str
    when: dt.datetime


@dataclass(frozen=True)
class SiUnit:
    """A lab reported in an SI unit under its own LOINC code (the property differs: moles, not mass)."""

    code: str
    display: str
    unit: str
    factor: float  # value in this unit = factor * value in the unit of vocabulary.LABS
    decimals: int


SI_UNITS: dict[str, SiUnit] = {
    "2160-0": SiUnit("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", 88.42, 0),
}
"""By vocabulary.LABS code; 88.42 umol/L per mg/dL from creatinine's molar mass (113.12 g/mol)."""


def in_si_units(m: Measurement) -> Measurement:
    """``m`` as an SI-reporting laboratory writes it (unchanged for labs without an SI unit here)."""
    si = SI_UNITS.get(m.code)
    if si is None:
        return m
    return Measurement(si.code, round(m.value * si.factor, si.decimals), si.unit, m.when)


def _moment(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    return dt.datetime(
        day.year, day.month, day.day, int(rng.integers(7, 18)), int(rng.integers(0, 4)) * 15, tzinfo=dt.UTC
    )


def measurements(patient: Patient, rng: np.random.Generator) -> list[Measurement]:
    """Two or three results per lab before the index date (oldest first) and one wild one after it."""
    span = (INDEX_DATE - FIRST_VISIT).days
    visits = sorted(
        int(d) for d in rng.choice(np.arange(1, span), size=int(rng.integers(2, 4)), replace=False)
    )
    days = [FIRST_VISIT + dt.timedelta(days=d - 1) for d in visits]
    out = []
    for code, model in LAB_MODELS.items():
        unit = vocab.LABS[code][1]
        disease = model.loading * patient.signals["labs"]
        baseline = math.sqrt(1 - model.loading**2) * rng.normal()
        for k, day in enumerate(days):
            weight = EARLIEST_WEIGHT + (1 - EARLIEST_WEIGHT) * k / (len(days) - 1)
            z = weight * disease + baseline + VISIT_NOISE * rng.normal()
            value = round(model.median * math.exp(model.log_sd * z), model.decimals)
            out.append(Measurement(code, value, unit, _moment(day, rng)))
        wild_day = INDEX_DATE + dt.timedelta(days=int(rng.integers(1, LAST_WILD_DAY)))
        wild = round(model.median * rng.uniform(*WILD_FACTOR), model.decimals)
        out.append(Measurement(code, wild, unit, _moment(wild_day, rng)))
    return out
