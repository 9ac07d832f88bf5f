"""Which subgroup cells of one attribute are withheld: small cells, and whatever would give them away.

Primary suppression withholds every group with fewer than ``k`` patients. That alone is not enough:
the groups of an attribute partition the patients, and the total is public (Flower sends the number
of examples), so if exactly one group is withheld its counts are the total minus the others. Secondary
(complementary) suppression therefore keeps withholding the next smallest group until the withheld
groups are at least two and together hold at least ``k`` patients (or nothing is left to publish):
what can be derived from the total is then only a sum over several groups that is itself no small cell.
"""

from __future__ import annotations

from collections.abc import Mapping


def suppressed_groups(sizes: Mapping[str, int], k: int) -> frozenset[str]:
    """The groups to withhold, given each group's number of patients; empty when nothing is small."""
    withheld = {group for group, n in sizes.items() if n < k}
    shown = sorted((g for g in sizes if g not in withheld), key=lambda g: (sizes[g], g))
    while withheld and shown and (len(withheld) == 1 or sum(sizes[g] for g in withheld) < k):
        withheld.add(shown.pop(0))
    return frozenset(withheld)
