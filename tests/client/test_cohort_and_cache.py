import numpy as np
import pytest
import torch

from client.cache import FeatureCache
from client.cohort import VALIDATION, CohortManifest, PatientEntry, assign_split


def test_split_is_stratified_patient_level_and_stable_when_patients_are_added():
    labels = {f"p-{i:04d}": int(i % 3 == 0) for i in range(300)}
    split = assign_split(labels, 0.25, seed=7)
    for label in (0, 1):
        members = [p for p, y in labels.items() if y == label]
        share = sum(split[p] == VALIDATION for p in members) / len(members)
        assert share == pytest.approx(0.25, abs=0.01)
    bigger = {**labels, **{f"p-new-{i}": 0 for i in range(10)}}
    moved = [p for p in labels if assign_split(bigger, 0.25, seed=7)[p] != split[p]]
    assert len(moved) <= 3  # only rank boundaries can move, never wholesale reshuffles
    assert assign_split(labels, 0.25, seed=8) != split


def test_cache_round_trip_loads_without_pickle(tmp_path):
    cache = FeatureCache(tmp_path)
    features = {"image": np.ones((1, 4, 4), np.float32), "label": 1, "sensitive": {"sex": "female"}}
    cache.save("ab" * 32, features)
    loaded = cache.load("ab" * 32)
    assert torch.equal(loaded["image"], torch.ones(1, 4, 4)) and loaded["label"] == 1
    assert loaded["sensitive"] == {"sex": "female"}
    assert not list(tmp_path.rglob(".tmp-*"))


def test_prune_removes_only_stale_entries(tmp_path):
    cache = FeatureCache(tmp_path)
    for key in ("aa" * 32, "bb" * 32, "cc" * 32):
        cache.save(key, {"x": 1})
    assert cache.prune({"aa" * 32}) == 2
    assert cache.keys() == {"aa" * 32}


def test_prune_deletes_entries_of_the_earlier_subfolder_layout(tmp_path):
    """Features an earlier version cached under ``ab/<key>.pt`` are found by no key: an erased patient's
    must not outlive the upgrade."""
    cache = FeatureCache(tmp_path)
    cache.save("aa" * 32, {"x": 1})
    legacy = tmp_path / "ab" / f"{'ab' * 32}.pt"
    legacy.parent.mkdir()
    legacy.write_bytes((tmp_path / f"{'aa' * 32}.pt").read_bytes())
    assert cache.prune({"aa" * 32, "ab" * 32}) == 1
    assert not legacy.parent.exists() and cache.keys() == {"aa" * 32}


def test_manifest_round_trip_and_missing_manifest_says_what_to_run(tmp_path):
    manifest = CohortManifest("hospital-a", "s", [PatientEntry("p-1", "train", 1, {"sex": "male"},
                                                               {"records": "k1"})])
    manifest.save(tmp_path)
    assert CohortManifest.load(tmp_path) == manifest
    with pytest.raises(FileNotFoundError, match="site prepare"):
        CohortManifest.load(tmp_path / "elsewhere")
