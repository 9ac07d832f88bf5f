"""Small cells never leave a site: primary suppression, complementary disclosure, and merged counts."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.fairness import merge, site_fairness
from compliance.fairness_counts import CellCounts
from compliance.fairness_suppression import suppressed_groups


def test_no_small_group_means_nothing_is_withheld():
    assert suppressed_groups({"female": 10, "male": 40}, 10) == frozenset()


def test_one_small_group_takes_the_next_smallest_with_it():
    """Alone, the small group's count would be the total minus the published groups."""
    assert suppressed_groups({"female": 50, "male": 45, "other": 3}, 10) == {"other", "male"}


def test_small_groups_that_together_are_still_small_take_another():
    assert suppressed_groups({"a": 3, "b": 4, "c": 50, "d": 60}, 10) == {"a", "b", "c"}
    assert suppressed_groups({"a": 6, "b": 8, "c": 50}, 10) == {"a", "b"}


def test_everything_is_withheld_when_nothing_safe_is_left():
    assert suppressed_groups({"a": 3, "b": 12}, 10) == {"a", "b"}
    assert suppressed_groups({"only": 4}, 10) == {"only"}


def test_the_withheld_group_cannot_be_recovered_from_the_site_table():
    """Total minus published must not give the small group's counts, and its label must not leave."""
    rng = np.random.default_rng(5)
    sex = np.array(["female"] * 50 + ["male"] * 45 + ["Pacific Islander"] * 3)
    y = rng.integers(0, 2, len(sex))
    score = rng.random(len(sex))
    table = site_fairness(y, score, {"ethnicity": sex})
    sent = table.attributes["ethnicity"]
    assert set(sent.groups) == {"female"}
    assert (sent.suppressed_cells, sent.suppressed_n) == (2, 48)
    residual = len(sex) - sum(c.n for c in sent.groups.values())
    assert residual == 48 and residual not in (3, 45)
    assert "Pacific" not in table.to_json()
    assert list(json.loads(table.to_json())["attributes"]["ethnicity"]["groups"]) == ["female"]
    assert not any("Pacific" in key or "/male/" in key for key in table.to_metrics())


def test_a_site_too_small_for_any_cell_sends_no_cell():
    y, score = np.array([0, 1] * 4), np.linspace(0.1, 0.9, 8)
    table = site_fairness(y, score, {"sex": ["female", "male"] * 4, "age_band": ["<50"] * 8})
    assert all(not a.groups and a.suppressed_n == 8 for a in table.attributes.values())
    assert all(a.demographic_parity_difference is None for a in table.attributes.values())


def test_merge_suppresses_again_cells_a_laxer_site_sent():
    y, score = np.array([0, 1] * 6), np.linspace(0.05, 0.95, 12)
    lax = site_fairness(y, score, {"sex": ["female"] * 8 + ["male"] * 4}, k=4)
    assert set(lax.attributes["sex"].groups) == {"female", "male"}
    federated = merge([lax], k=10)
    assert federated.attributes["sex"].groups == {}
    assert federated.attributes["sex"].suppressed_n == 12


GROUPS = ("female", "male", "other", "unknown")


@st.composite
def site_data(draw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 60))
    y = np.asarray(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int64)
    score = np.asarray(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=np.float64)
    weights = draw(st.lists(st.integers(0, 5), min_size=len(GROUPS), max_size=len(GROUPS)).filter(any))
    pool = [g for g, w in zip(GROUPS, weights, strict=True) for _ in range(w)]
    groups = np.asarray(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)), dtype=object)
    return y, score, groups


@settings(max_examples=60, deadline=None)
@given(sites=st.lists(site_data(), min_size=1, max_size=4), k=st.integers(1, 15),
       threshold=st.floats(0.05, 1.0), bins=st.integers(2, 12))
def test_merged_counts_are_the_counts_of_the_pooled_published_cells(sites, k, threshold, bins):
    tables = [site_fairness(y, s, {"sex": g}, k=k, threshold=threshold, bins=bins) for y, s, g in sites]
    for (_, _, groups), table in zip(sites, tables, strict=True):
        sent = table.attributes["sex"]
        assert all(cell.n >= k for cell in sent.groups.values())
        withheld = len(groups) - sum(cell.n for cell in sent.groups.values())
        assert withheld == sent.suppressed_n
        assert sent.suppressed_cells != 1 or not sent.groups  # one withheld cell = total minus the rest
        assert withheld == 0 or withheld >= k or not sent.groups
    federated = merge(tables, k=k).attributes["sex"]
    published = sum(c.n for c in federated.groups.values())
    assert federated.suppressed_n + published == sum(len(y) for y, _, _ in sites)
    for group, merged in federated.groups.items():
        rows = [(y[g == group], s[g == group]) for (y, s, g), t in zip(sites, tables, strict=True)
                if group in t.attributes["sex"].groups]
        pooled = CellCounts.of(np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]),
                               threshold, bins)
        assert merged.model_dump(exclude={"score_sum"}) == pooled.model_dump(exclude={"score_sum"})
        assert np.allclose(merged.score_sum, pooled.score_sum, rtol=0, atol=1e-9)
