"""Fake identities: the names, addresses and numbers that de-identification must remove.

Every identity is drawn from seeded lists so the ground truth can list exactly which strings must
never appear in a cache, a log line or a report. The lists avoid strings made only of hex letters so
an identifier can never appear by chance inside a random hex file name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

GIVEN_FEMALE = (
    "Alice",
    "Amelia",
    "Beatrix",
    "Clara",
    "Dorothy",
    "Elena",
    "Fiona",
    "Grace",
    "Hannah",
    "Irene",
    "Julia",
    "Katrin",
    "Laura",
    "Margot",
    "Nora",
    "Olivia",
    "Paula",
    "Rosa",
    "Sophie",
    "Tessa",
    "Ursula",
    "Vera",
    "Wilma",
    "Yvonne",
    "Zoe",
    "Mira",
    "Ingrid",
    "Lucia",
    "Helena",
    "Greta",
)
GIVEN_MALE = (
    "Adrian",
    "Bruno",
    "Carl",
    "Dennis",
    "Emil",
    "Felix",
    "Georg",
    "Hugo",
    "Isaac",
    "Jonas",
    "Karl",
    "Lukas",
    "Martin",
    "Nils",
    "Oscar",
    "Peter",
    "Quentin",
    "Robert",
    "Simon",
    "Tobias",
    "Victor",
    "Walter",
    "Xaver",
    "Yusuf",
    "Anton",
    "Moritz",
    "Samuel",
    "Theo",
    "Louis",
    "Henry",
)
FAMILY = (
    "Abbott",
    "Barlow",
    "Carver",
    "Dalton",
    "Ellison",
    "Fairbanks",
    "Garrison",
    "Holloway",
    "Ingram",
    "Jennings",
    "Kingsley",
    "Lambert",
    "Morrison",
    "Norwood",
    "Ortega",
    "Prescott",
    "Quinlan",
    "Ramsey",
    "Sheridan",
    "Thornton",
    "Underwood",
    "Vance",
    "Whitmore",
    "Yardley",
    "Zimmerman",
    "Hartmann",
    "Okafor",
    "Nakamura",
    "Petrov",
    "Lindqvist",
    "Moreau",
    "Kowalski",
    "Brennan",
    "Castillo",
    "Haddad",
    "Iverson",
    "Jovanovic",
    "Kaplan",
    "Mendoza",
    "Novak",
)
STREETS = (
    "Maple Street",
    "Harbour Road",
    "Mill Lane",
    "Elm Avenue",
    "Station Road",
    "Orchard Way",
    "Hillside Drive",
    "Church Street",
    "Willow Close",
    "Victoria Road",
    "Park Lane",
    "Kingsway",
)
CITIES = (
    "Northfield",
    "Riverton",
    "Lakewood",
    "Springvale",
    "Ashford",
    "Millbrook",
    "Stonehaven",
    "Westport",
    "Glenmoor",
    "Harrowgate",
)
PHYSICIANS = ("Lister^Joseph", "Osler^William", "Nightingale^Florence", "Snow^John", "Apgar^Virginia")


@dataclass(frozen=True)
class Address:
    line: str
    city: str
    postal_code: str


@dataclass(frozen=True)
class Identity:
    """Who a patient is at one hospital; all of it is identifying."""

    mrn: str
    given: str
    family: str
    birth_date: dt.date
    phone: str
    address: Address

    @property
    def dicom_name(self) -> str:
        """The name as DICOM's PN value: ``Family^Given``."""
        return f"{self.family}^{self.given}"


def draw_identity(rng: np.random.Generator, *, mrn: str, female: bool, birth_date: dt.date) -> Identity:
    """One patient's identity; the caller fixes the MRN (unique per site) and the birth date (from age)."""
    given = rng.choice(GIVEN_FEMALE if female else GIVEN_MALE)
    address = Address(
        line=f"{int(rng.integers(1, 400))} {rng.choice(STREETS)}",
        city=str(rng.choice(CITIES)),
        postal_code=_zip_plus_four(int(rng.integers(10000, 99999))),
    )
    phone = f"+1 {int(rng.integers(201, 990))} 555 01{int(rng.integers(0, 100)):02d}"
    return Identity(
        mrn=mrn,
        given=str(given),
        family=str(rng.choice(FAMILY)),
        birth_date=birth_date,
        phone=phone,
        address=address,
    )


def _zip_plus_four(zip5: int) -> str:
    """A ZIP+4 postcode such as ``57284-1996``. A bare five-digit code is indistinguishable from a port
    or a process id in a log, so a leak search for it finds false hits; the add-on is derived from the
    same draw, so every later draw, and each seed's cohort, stays as it was."""
    return f"{zip5:05d}-{zip5 * 7919 % 10000:04d}"


def draw_mrns(rng: np.random.Generator, n: int, *, prefix: str, digits: int) -> list[str]:
    """``n`` distinct medical record numbers in the site's format (e.g. ``MRN0481520``)."""
    numbers = rng.choice(10**digits - 10 ** (digits - 1), size=n, replace=False) + 10 ** (digits - 1)
    return [f"{prefix}{int(k)}" for k in numbers]
