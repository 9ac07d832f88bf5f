"""Fairness on real prepared sites: the synthetic hospitals go through the Site pipeline, then fairness.

No model is trained here (that is the server's test); scores are a seeded noisy function of the label,
which is all fairness needs. What is checked is the path the ClientApp will take: validation patients
of the prepared cohort -> :func:`sensitive_columns` -> :func:`site_fairness` -> JSON -> :func:`merge`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from client.cohort import VALIDATION
from client.cohort_dataset import CohortDataset
from client.site import Site
from compliance.fairness import SiteFairness, merge, sensitive_columns, site_fairness
from compliance.fairness_counts import CellCounts
from modalities.records.features import age_band
from polyclinic.study import default_study

Columns = dict[str, np.ndarray]
AGE_BANDS = {age_band(a) for a in (None, 30, 55, 70, 90)}


@pytest.fixture(scope="module")
def validation_sets(federation, tmp_path_factory) -> list[tuple[np.ndarray, np.ndarray, Columns]]:
    root, truth = federation
    study, sets = default_study(), []
    for number, site in enumerate(truth.sites):
        state = tmp_path_factory.mktemp(f"fairness-state-{site.id}")
        Site(root / site.id, study, state).run(build_cache=True)
        patients = CohortDataset(state, study, VALIDATION).patients
        y = np.asarray([p.label for p in patients])
        rng = np.random.default_rng(number)
        score = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, len(y)), 0, 1)
        sets.append((y, score, sensitive_columns(p.sensitive for p in patients)))
    return sets


def test_prepared_sites_send_banded_attributes_and_nothing_identifying(federation, validation_sets):
    _, truth = federation
    identifiers = {i.lower() for s in truth.sites for p in s.patients for i in p.identifiers()}
    for y, score, sensitive in validation_sets:
        assert set(sensitive) == {"sex", "age_band", "ethnicity"}
        assert set(sensitive["age_band"]) <= AGE_BANDS
        for k in (10, 3):
            table = site_fairness(y, score, sensitive, k=k)
            text = table.to_json().lower()
            assert not [i for i in identifiers if f'"{i}"' in text or f"/{i}/" in text]
            for attribute, sent in table.attributes.items():
                assert sent.suppressed_n + sum(c.n for c in sent.groups.values()) == len(y)
                assert all(c.n >= k for c in sent.groups.values())
                if attribute == "age_band":
                    assert set(sent.groups) <= AGE_BANDS


def test_federated_view_of_the_prepared_sites_is_the_pooled_published_cells(validation_sets):
    k = 3  # three sites of about ten validation patients: k=10 would leave next to nothing to check
    tables = [SiteFairness.from_json(site_fairness(y, s, a, k=k).to_json()) for y, s, a in validation_sets]
    assert any(t.attributes["sex"].groups for t in tables)
    federated = merge(tables, k=k)
    assert federated.sites == 3 and json.loads(federated.to_json())["sites"] == 3
    for attribute, merged in federated.attributes.items():
        for group, cell in merged.groups.items():
            parts = [(y[a[attribute] == group], s[a[attribute] == group])
                     for (y, s, a), t in zip(validation_sets, tables, strict=True)
                     if group in t.attributes[attribute].groups]
            pooled = CellCounts.of(*(np.concatenate(p) for p in zip(*parts, strict=True)), 0.5, 10)
            assert cell.model_dump(exclude={"score_sum"}) == pooled.model_dump(exclude={"score_sum"})
