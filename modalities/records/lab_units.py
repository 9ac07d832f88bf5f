"""Lab results in one unit per study lab, scaled by a published reference interval.

Sites report the same test in different units (creatinine in mg/dL in the US, umol/L in Europe;
haemoglobin in g/dL, g/L or mmol/L), and a model fed raw numbers learns the site, not the patient. So
each result is converted to its lab's canonical unit with a fixed factor (a molar mass where mass and
substance concentration meet), and a unit that is not listed is rejected (``records.unknown-unit``),
never guessed. Units are UCUM codes: ``Quantity.system`` must be ``http://unitsofmeasure.org`` and
``Quantity.code`` one of the lab's listed codes (the free-text ``Quantity.unit`` is not read).

The converted value is then scaled by a fixed reference, the lab's adult reference interval
``[low, high]`` read as the central 95 % of a log-normal healthy population::

    z = (ln value - ln centre) / spread,   centre = sqrt(low * high),   spread = ln(high / low) / (2 * 1.96)

so ``z`` is a standard score of the healthy population (the interval's ends map to -1.96 and +1.96)
and every constant is public and the same at every site:
standardising a record needs no statistic of any site's data (which would be private and differ
between sites). Intervals are the usual adult ones of clinical laboratory references (e.g. Tietz
Clinical Guide to Laboratory Tests, 4th ed.; MedlinePlus); they scale inputs and diagnose nobody.
LOINC separates mass and substance concentration (creatinine 2160-0 [Mass/volume], 14682-9
[Moles/volume]); ``also_coded`` lists such siblings, which count as the same lab, and the unit, not
the code, decides the factor.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UCUM = "http://unitsofmeasure.org"
Z_95 = 1.959964


@dataclass(frozen=True)
class LabReference:
    """One lab: its canonical UCUM unit, accepted units (factor to the canonical unit) and reference."""

    name: str
    unit: str
    factors: Mapping[str, float]
    low: float
    high: float
    also_coded: tuple[str, ...] = ()

    @property
    def centre(self) -> float:
        return math.sqrt(self.low * self.high)

    @property
    def spread(self) -> float:
        return math.log(self.high / self.low) / (2 * Z_95)

    def scale(self, value: float) -> float:
        """``(ln value - ln centre) / spread``; values at or below zero (an undetectable result reported
        as 0) count as a hundredth of the centre, below any real result of these labs."""
        return (math.log(max(value, self.centre / 100)) - math.log(self.centre)) / self.spread


LAB_REFERENCES: dict[str, LabReference] = {
    "1988-5": LabReference(
        "C reactive protein", "mg/L", {"mg/L": 1.0, "ug/mL": 1.0, "mg/dL": 10.0}, low=0.2, high=10.0
    ),
    "2532-0": LabReference(
        "Lactate dehydrogenase", "U/L", {"U/L": 1.0, "[IU]/L": 1.0, "ukat/L": 60.0}, low=125.0, high=220.0
    ),  # 1 ukat = 1 umol/s = 60 umol/min = 60 U
    "2039-6": LabReference(
        "Carcinoembryonic antigen", "ng/mL", {"ng/mL": 1.0, "ug/L": 1.0}, low=0.5, high=5.0
    ),  # smokers included: non-smokers stay below 3 ng/mL
    "6690-2": LabReference(
        "Leukocytes", "10*3/uL", {"10*3/uL": 1.0, "10*9/L": 1.0, "10*3/mm3": 1.0, "/uL": 1e-3},
        low=4.0, high=11.0,
    ),
    "718-7": LabReference(
        "Hemoglobin", "g/dL", {"g/dL": 1.0, "g/L": 0.1, "mmol/L": 1.61145}, low=12.0, high=17.5,
        also_coded=("59260-0",),
    ),  # mmol/L counts haem (monomer, 16 114.5 g/mol), the convention of Dutch and Nordic labs
    "2160-0": LabReference(
        "Creatinine", "mg/dL", {"mg/dL": 1.0, "umol/L": 0.0113120, "mmol/L": 11.3120}, low=0.6, high=1.2,
        also_coded=("14682-9",),
    ),  # 113.12 g/mol: 1 umol/L = 113.12 ug/L = 0.011312 mg/dL (1 mg/dL = 88.4 umol/L)
    "2345-7": LabReference(
        "Glucose", "mg/dL", {"mg/dL": 1.0, "mmol/L": 18.0156, "g/L": 100.0}, low=70.0, high=140.0,
        also_coded=("14749-6",),
    ),  # non-fasting; 180.156 g/mol: 1 mmol/L = 18.0156 mg/dL
}
"""Study labs by LOINC code. A study naming a lab not listed here fails at start-up: add it with its
units and a cited reference interval (and a test of its factors) rather than feeding raw numbers."""


def table_digest() -> str:
    """A short digest of the table, part of the feature recipe: a changed factor or interval changes
    every lab feature, so cached features made with the old table must not be reused."""
    text = repr(sorted((code, repr(ref)) for code, ref in LAB_REFERENCES.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def reference_for(loinc: str) -> LabReference:
    """The table entry of a study lab; an unlisted code is a configuration error naming the choices."""
    if loinc not in LAB_REFERENCES:
        raise ValueError(
            f"records.labs: LOINC {loinc!r} has no unit table entry, so its results cannot be converted "
            f"or scaled; listed labs: {', '.join(sorted(LAB_REFERENCES))}. Add it to "
            "modalities/records/lab_units.py with its UCUM units and a published reference interval"
        )
    return LAB_REFERENCES[loinc]


def canonical_value(quantity: Any, ref: LabReference) -> float | None:
    """The value of a fhir.resources Quantity in the lab's canonical unit; None in an unlisted unit."""
    if quantity is None or quantity.value is None:
        return None
    factor = ref.factors.get(quantity.code or "") if quantity.system == UCUM else None
    if factor is None:
        return None
    value = float(quantity.value) * factor
    return value if math.isfinite(value) else None


def unit_problem(quantity: Any, ref: LabReference) -> str | None:
    """Why a result's unit cannot be converted, or None if it can. The unit found is not quoted: like
    every value of the input, it stays out of messages (it is free text in a badly coded export)."""
    if quantity is None or quantity.value is None:
        return None  # no numeric result: nothing to convert, the features skip it
    if quantity.system != UCUM:
        found = "a unit outside UCUM" if quantity.system else "no unit system (UCUM expected)"
    elif not quantity.code:
        found = "no UCUM unit code"
    elif quantity.code not in ref.factors:
        found = "a UCUM unit not listed for this lab"
    else:
        return None
    return f"a {ref.name} result with {found}; accepted UCUM codes: {', '.join(ref.factors)}"
