"""Site fairness and its federated merge against fairlearn and sklearn on the pooled predictions.

Four synthetic sites (seeded numpy generators) with known group effects: group ``B`` of ``sex`` gets
scores pushed up (a higher selection rate and FPR), the age band ``75+`` gets noisier scores (a lower
AUROC), and one site holds only a handful of ``B`` patients, so the merge must leave that site's cell out.
The reference is fairlearn on the pooled rows of exactly the published (site, group) cells.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score, roc_auc_score

from compliance.fairness import (
    FederatedFairness,
    SiteFairness,
    merge,
    sensitive_columns,
    site_fairness,
)
from compliance.fairness_counts import rate_gap, score_bins

BINS = 10
SEX_MIX = [(0.5, 0.45, 0.05), (0.3, 0.7, 0.0), (0.6, 0.39, 0.01), (0.45, 0.45, 0.10)]
AGES = ("<40", "40-59", "60-74", "75+")
ATTRIBUTES = ("sex", "age_band")


def make_site(seed: int, n: int, sex_mix: tuple[float, float, float]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["A", "B", "C"], size=n, p=sex_mix)
    age = rng.choice(AGES, size=n, p=[0.2, 0.3, 0.3, 0.2])
    y = (rng.random(n) < np.where(sex == "B", 0.4, 0.25)).astype(int)
    noise = np.where(age == "75+", 2.5, 1.0)
    logit = 2.0 * (y - 0.5) + 0.8 * (sex == "B") + rng.normal(0, 1, n) * noise
    return pd.DataFrame({"y": y, "score": 1 / (1 + np.exp(-logit)), "sex": sex, "age_band": age})


@pytest.fixture(scope="module")
def sites() -> list[pd.DataFrame]:
    return [make_site(seed, n, mix) for seed, n, mix in zip((1, 2, 3, 4), (400, 250, 300, 500), SEX_MIX,
                                                             strict=True)]


@pytest.fixture(scope="module")
def tables(sites) -> list[SiteFairness]:
    return [site_fairness(s.y.to_numpy(), s.score.to_numpy(), {a: s[a].to_numpy() for a in ATTRIBUTES})
            for s in sites]


def pooled_published(sites: list[pd.DataFrame], tables: list[SiteFairness], attribute: str) -> pd.DataFrame:
    """Rows of the cells each site published for ``attribute``, pooled."""
    parts = [site[site[attribute].isin(list(table.attributes[attribute].groups))]
             for site, table in zip(sites, tables, strict=True)]
    return pd.concat(parts, ignore_index=True)


def direct_ece(y: np.ndarray, score: np.ndarray) -> float:
    index = score_bins(score, BINS)
    total = 0.0
    for b in np.unique(index):
        inside = index == b
        total += inside.mean() * abs(score[inside].mean() - y[inside].mean())
    return total


def test_small_site_cell_is_left_out_and_the_known_effects_show(tables):
    assert tables[2].attributes["sex"].suppressed_cells >= 1  # about 3 patients of C at site 3
    assert "C" not in tables[2].attributes["sex"].groups
    assert tables[1].attributes["sex"].suppressed_cells == 0  # no C at all there
    federated = merge(tables)
    metrics = federated.metrics()
    assert metrics["sex"]["B"].selection_rate > metrics["sex"]["A"].selection_rate + 0.1
    assert metrics["age_band"]["75+"].auroc < metrics["age_band"]["40-59"].auroc - 0.05
    assert federated.attributes["sex"].demographic_parity_difference > 0.1


@pytest.mark.parametrize("attribute", ["sex", "age_band"])
def test_merged_confusion_figures_equal_fairlearn_on_pooled_predictions(sites, tables, attribute):
    federated = merge(tables)
    pooled = pooled_published(sites, tables, attribute)
    published = list(federated.attributes[attribute].groups)
    pooled = pooled[pooled[attribute].isin(published)]
    y, pred, groups = pooled.y.to_numpy(), (pooled.score >= 0.5).astype(int).to_numpy(), pooled[attribute]
    frame = MetricFrame(
        metrics={"n": count, "tpr": true_positive_rate, "fpr": false_positive_rate,
                 "selection_rate": selection_rate, "ppv": precision_score},
        y_true=y, y_pred=pred, sensitive_features=groups)
    merged = federated.metrics()[attribute]
    assert set(merged) == set(frame.by_group.index)
    for group, row in frame.by_group.iterrows():
        figures = merged[group]
        assert (figures.n, figures.tpr, figures.fpr, figures.selection_rate, figures.ppv) == (
            row.n, row.tpr, row.fpr, row.selection_rate, row.ppv)
        assert figures.prevalence == y[groups == group].mean()
    table = federated.attributes[attribute]
    assert table.demographic_parity_difference == demographic_parity_difference(
        y, pred, sensitive_features=groups)
    assert table.equalized_odds_difference == equalized_odds_difference(y, pred, sensitive_features=groups)


@pytest.mark.parametrize("attribute", ["sex", "age_band"])
def test_merged_auroc_and_calibration_against_sklearn_on_pooled_predictions(sites, tables, attribute):
    """Binned AUROC is within its own bound of sklearn's exact value, and the bound is not vacuous.

    The tolerance is the bound proven in :attr:`CellCounts.auroc_max_error` (only same-bin pairs can be
    misordered, each by at most 1/2), computed from the merged table itself; with 10 bins and these score
    spreads it is 0.025-0.052 (the realised error is 0.004-0.017, always downward: same-bin pairs of a
    useful model are mostly in order but count one half).
    """
    federated = merge(tables)
    pooled = pooled_published(sites, tables, attribute)
    for group, figures in federated.metrics()[attribute].items():
        rows = pooled[pooled[attribute] == group]
        exact = roc_auc_score(rows.y, rows.score)
        assert abs(figures.auroc - exact) <= figures.auroc_max_error + 1e-12
        assert 0 < figures.auroc_max_error < 0.06
        expected = direct_ece(rows.y.to_numpy(), rows.score.to_numpy())
        assert figures.calibration_error == pytest.approx(expected, abs=1e-12)


def test_site_figures_are_exact_and_its_gaps_are_fairlearns(sites, tables):
    site, table = sites[0], tables[0]
    for attribute in ("sex", "age_band"):
        published = list(table.attributes[attribute].groups)
        rows = site[site[attribute].isin(published)]
        pred = (rows.score >= 0.5).astype(int)
        for group, figures in table.metrics()[attribute].items():
            part = rows[rows[attribute] == group]
            assert figures.auroc == roc_auc_score(part.y, part.score) and figures.auroc_max_error == 0
        gaps = table.attributes[attribute]
        assert gaps.demographic_parity_difference == demographic_parity_difference(
            rows.y, pred, sensitive_features=rows[attribute])
        assert gaps.equalized_odds_difference == equalized_odds_difference(
            rows.y, pred, sensitive_features=rows[attribute])
        cells = gaps.groups.values()  # the federated formula gives the same quantities from counts
        assert gaps.demographic_parity_difference == rate_gap([c.selection_rate for c in cells])
        assert gaps.equalized_odds_difference == max(rate_gap([c.tpr for c in cells]),
                                                     rate_gap([c.fpr for c in cells]))


def test_a_group_without_positives_has_no_tpr_and_stays_out_of_that_gap():
    """fairlearn zero-fills the TPR of a group without positives; here that group is left out of the gap."""
    y = np.array([0] * 12 + [1, 0] * 12)
    score = np.array([0.2] * 12 + [0.9, 0.1] * 6 + [0.6, 0.3] * 6)
    groups = np.array(["none"] * 12 + ["good"] * 12 + ["fair"] * 12)
    table = site_fairness(y, score, {"g": groups})
    assert table.metrics()["g"]["none"].tpr is None
    # TPR: good 1, fair 1; FPR: none 0, good 0, fair 0 -> no gap; a zero-filled TPR of "none" makes a gap of 1
    assert table.attributes["g"].equalized_odds_difference == 0.0
    assert equalized_odds_difference(y, (score >= 0.5).astype(int), sensitive_features=groups) == 1.0
    federated = merge([SiteFairness.from_json(table.to_json())])
    assert federated.attributes["g"].equalized_odds_difference == 0.0


FIELDS = {
    "version", "k", "threshold", "bins", "sites", "attributes", "groups", "exact_auroc", "suppressed_cells",
    "suppressed_n", "demographic_parity_difference", "equalized_odds_difference", "n", "positives", "tp",
    "fp", "tn", "fn", "positive_histogram", "negative_histogram", "score_sum",
}
"""The whole vocabulary of the wire format besides attribute and group names."""


def assert_only_numbers_and_names(value: object, names: set[str]) -> None:
    """Every key is a field, attribute or group name; every value a number, null or a list of numbers."""
    if isinstance(value, dict):
        assert set(value) <= names, set(value) - names
        for inner in value.values():
            assert_only_numbers_and_names(inner, names)
    elif isinstance(value, list):
        for inner in value:
            assert_only_numbers_and_names(inner, names)
    else:
        assert value is None or isinstance(value, int | float), value


def test_json_round_trip_holds_only_numbers_and_group_labels(tables):
    for table in (*tables, merge(tables)):
        text = table.to_json()
        kind = FederatedFairness if isinstance(table, FederatedFairness) else SiteFairness
        assert kind.from_json(text) == table
        labels = {g for a in table.attributes.values() for g in a.groups} | set(table.attributes)

        assert_only_numbers_and_names(json.loads(text), FIELDS | labels)
        assert all(isinstance(v, int | float) for v in table.to_metrics().values())


def test_tampered_or_unsuppressed_json_is_refused(tables):
    data = json.loads(tables[0].to_json())
    cell = data["attributes"]["sex"]["groups"]["A"]
    with pytest.raises(ValueError, match="do not add up"):
        broken = {"groups": {"A": {**cell, "tp": cell["tp"] + 1}}}
        SiteFairness.from_json(json.dumps({**data, "attributes": {"sex": broken}}))
    small = {**cell, "n": 5, "positives": 1, "tp": 1, "fn": 0, "fp": 0, "tn": 4,
             "positive_histogram": [0] * 9 + [1], "negative_histogram": [4] + [0] * 9}
    with pytest.raises(ValueError, match="below k=10"):
        SiteFairness.from_json(json.dumps({**data, "attributes": {"sex": {"groups": {"A": small}}}}))


def test_sites_with_different_settings_do_not_merge(sites, tables):
    s = sites[0]
    other = site_fairness(s.y.to_numpy(), s.score.to_numpy(), {"sex": s.sex.to_numpy()}, threshold=0.3)
    with pytest.raises(ValueError, match="different \\(threshold, bins\\)"):
        merge([tables[0], other])


def test_inputs_are_checked_and_a_raw_age_is_refused():
    y, score = np.array([0, 1, 1]), np.array([0.1, 0.8, 0.6])
    with pytest.raises(ValueError, match="band it first"):
        site_fairness(y, score, {"age": np.array([34, 71, 58])})
    with pytest.raises(ValueError, match="probabilities"):
        site_fairness(y, np.array([0.1, 1.5, 0.2]), {})
    with pytest.raises(ValueError, match="0/1"):
        site_fairness(np.array([0, 2, 1]), score, {})
    with pytest.raises(ValueError, match="2 labels for 3 patients"):
        site_fairness(y, score, {"sex": ["female", "male"]})


def test_sensitive_columns_fill_missing_values_with_unknown():
    columns = sensitive_columns([{"sex": "female", "age_band": "<50"}, {"sex": "male", "ethnicity": ""}, {}])
    assert {k: v.tolist() for k, v in columns.items()} == {
        "age_band": ["<50", "unknown", "unknown"], "ethnicity": ["unknown", "unknown", "unknown"],
        "sex": ["female", "male", "unknown"]}
    table = site_fairness(np.zeros(3), np.zeros(3), {"sex": [None, float("nan"), "female"]}, k=1)
    assert {g: c.n for g, c in table.attributes["sex"].groups.items()} == {"female": 1, "unknown": 2}
