"""How much one patient can still show in what a site released: (epsilon, delta) of their rounds only.

Erasure stops future use, but updates already released cannot be recalled. What bounds their trace is
the DP guarantee: DP-SGD protects each training example, and a site's cohort holds one example per
patient, so it protects each patient. A round that did not train on the patient costs them nothing, so
the bound is the ledger's spends of exactly the rounds that did, composed by the ledger's own Opacus
accountant (never by hand): a tighter, still valid, bound than the site's total epsilon. By
post-processing it holds for every model computed from those updates, the global model included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from privacy.accounting import Entry, append_entry, epsilon_of
from privacy.ledger import Spend


@dataclass(frozen=True)
class RoundUse:
    run_id: str
    round: int
    recorded_at: str
    epsilon: float | None
    """This round's own epsilon at the bound's delta; None when the ledger holds no spend for it (the
    round trained nothing that left the site, e.g. it was refused over budget)."""


@dataclass(frozen=True)
class ResidualBound:
    epsilon: float
    delta: float
    mechanism: str | None
    rounds: int
    """Released rounds that used the patient (those with a spend in the ledger)."""

    def statement(self) -> str:
        """The bound in words a data subject and a DPO can read."""
        if self.rounds == 0:
            return ("No released round of this site trained on this patient's data: nothing that left the "
                    "site depends on them.")
        return (f"{self.rounds} released training round(s) used this patient's pseudonymised data. Composed "
                f"by the {self.mechanism} accountant over exactly those rounds, the model updates the site "
                f"released, and every model computed from them (the global model included), are "
                f"(epsilon={self.epsilon:.3f}, delta={self.delta:g})-differentially private with respect "
                f"to this patient: the probability of any outcome of training with their data is at most "
                f"e^{self.epsilon:.3f} = {math.exp(self.epsilon):.3g} times that of training without them, "
                f"plus {self.delta:g}.")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "statement": self.statement()}


def _compose(spends: Sequence[Spend], delta: float) -> tuple[float, str | None]:
    """Epsilon of ``spends`` (ledger order) by their recorded accountant; (0, None) when empty."""
    mechanisms = {s.mechanism for s in spends}
    if len(mechanisms) > 1:
        raise ValueError(f"spends recorded with several accountants {sorted(mechanisms)}: the privacy "
                         "ledger is damaged; keep it for the audit and investigate")
    if not spends:
        return 0.0, None
    history: list[Entry] = []
    for s in spends:
        history = append_entry(history, (s.noise_multiplier, s.sample_rate, s.steps))
    mechanism = mechanisms.pop()
    return epsilon_of(history, mechanism, delta), mechanism


def residual_bound(uses: Sequence[tuple[str, int, str]], spends: Sequence[Spend],
                   delta: float) -> tuple[list[RoundUse], ResidualBound]:
    """Each round in ``uses`` (``UsageRegister.rounds_for``) with its own epsilon, and the bound over all.

    ``spends`` is the site's whole ledger, oldest first; only those of the used (run, round) count.
    """
    used = {(run_id, round) for run_id, round, _ in uses}
    mine = [s for s in spends if (s.run_id, s.round) in used]
    rounds = []
    for run_id, round, recorded_at in uses:
        own = [s for s in mine if (s.run_id, s.round) == (run_id, round)]
        rounds.append(RoundUse(run_id, round, recorded_at, _compose(own, delta)[0] if own else None))
    epsilon, mechanism = _compose(mine, delta)
    released = len({(s.run_id, s.round) for s in mine})
    return rounds, ResidualBound(epsilon, delta if released else 0.0, mechanism, released)
