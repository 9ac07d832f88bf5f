"""Serving a data subject's Art. 15 access and Art. 17 erasure requests at one site.

Every request is recorded twice: in the GDPR register (``STATE/gdpr.db``; an erasure there is what
excludes the patient from every later site run) and as a signed ``gdpr.access`` / ``gdpr.erasure`` entry
of the site's audit trail, which an auditor can verify. Both hold the pseudonym only. The answer, an
:class:`AccessReport`, is returned to the caller to show the data subject; it is never written here.

What the site holds now (which modalities have items for the patient, their consent decision, what the
feature cache keeps) is found by the caller, who has the site's discovery; this module adds what the
registers and the privacy ledger know.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compliance.audit import AuditTrail
from compliance.gdpr import Request, RequestKind, RequestRegister, UsageRegister
from compliance.gdpr_bound import ResidualBound, RoundUse, residual_bound
from privacy.ledger import LEDGER_FILE, PrivacyLedger


@dataclass(frozen=True)
class Holdings:
    """What the site holds about one patient now, found through the site's own discovery."""

    found_in: tuple[str, ...] = ()
    """Modalities with items of this patient in the site's data folder."""
    consent: str = "records.absent"
    """The consent decision code now (``consent.*``), or why none could be made (``records.*``)."""
    cached: tuple[str, ...] = ()
    """Modalities whose de-identified features are in ``STATE/cache``."""


@dataclass(frozen=True)
class AccessReport:
    """The Art. 15 answer for one patient at one site (also what an erasure leaves behind)."""

    site_id: str
    pseudonym: str
    holdings: Holdings
    erased_at: str | None
    requests: list[Request]
    rounds: list[RoundUse]
    bound: ResidualBound

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site_id, "pseudonym": self.pseudonym, **asdict(self.holdings),
                "erased": self.erased_at is not None, "erased_at": self.erased_at,
                "requests": [asdict(r) for r in self.requests], "rounds": [asdict(r) for r in self.rounds],
                "residual": self.bound.to_json()}


def access_report(state: Path, site_id: str, pseudonym: str, holdings: Holdings,
                  delta: float) -> AccessReport:
    """What the registers and the ledger say about ``pseudonym``; reads only, records nothing."""
    state = Path(state)
    register = RequestRegister.for_state(state)
    erasure = register.erasure_of(pseudonym)
    spends = PrivacyLedger.for_state(state).spends() if (state / LEDGER_FILE).is_file() else []
    rounds, bound = residual_bound(UsageRegister.for_state(state).rounds_for(pseudonym), spends, delta)
    return AccessReport(site_id, pseudonym, holdings, erasure.created_at if erasure else None,
                        register.requests(pseudonym), rounds, bound)


def _serve(kind: RequestKind, state: Path, site_id: str, pseudonym: str, holdings: Holdings,
           delta: float) -> AccessReport:
    RequestRegister.for_state(state).record(kind, pseudonym)  # first: an erasure holds even if audit fails
    event = "gdpr.erasure" if kind == "erasure" else "gdpr.access"
    AuditTrail.for_state(state, actor=f"site:{site_id}").append(
        event, {"patient": pseudonym, "items": len(holdings.found_in)})
    return access_report(state, site_id, pseudonym, holdings, delta)


def serve_access(state: Path, site_id: str, pseudonym: str, holdings: Holdings, delta: float) -> AccessReport:
    """Record an Art. 15 request (register + audit trail) and answer it."""
    return _serve("access", state, site_id, pseudonym, holdings, delta)


def serve_erasure(state: Path, site_id: str, pseudonym: str, holdings: Holdings,
                  delta: float) -> AccessReport:
    """Record an Art. 17 erasure: from now on every site run excludes the patient (``gdpr.erased``),
    whether or not their data is at the site yet; the answer states the residual influence bound."""
    return _serve("erasure", state, site_id, pseudonym, holdings, delta)
