"""The whole study through the Flower deployment engine: TLS, authenticated SuperNodes, one site each."""

from __future__ import annotations

import pytest
from leak_search import identifiers, leaks
from loopback import HOSPITALS, REPO, Loopback

pytestmark = pytest.mark.slow


def test_a_study_runs_to_the_end_on_three_authenticated_hospitals(federation, tmp_path):
    root, truth = federation
    sites = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(sites) == len(HOSPITALS)
    study = tmp_path / "study.toml"
    study.write_text("[dp]\nrounds = 2\n\n[federation]\nmin-sites = 3\n")
    out = tmp_path / "out"
    with Loopback(tmp_path / "federation", HOSPITALS) as loopback:
        loopback.start_superlink()
        ids = [loopback.register(h) for h in HOSPITALS]
        for hospital, site in zip(HOSPITALS, sites, strict=True):
            loopback.start_supernode(hospital, site, tmp_path / "state" / hospital)
        loopback.wait_online(ids)
        result = loopback.run_app(REPO, {"study": str(study), "out-dir": str(out)}, timeout=420)
        assert result.returncode == 0, f"see {loopback.logs}: {result.stderr[-2000:]}"
        [run] = loopback.runs()
        assert run["status"] == "finished:completed", (run, loopback.logs)
    assert any((out / "coordinator").iterdir()), "no checkpoint written"
    assert any((out / "model").iterdir()), "no global model written"
    for hospital in HOSPITALS:
        assert (tmp_path / "state" / hospital / "ledger.db").is_file(), "the site kept no privacy ledger"
    # What the coordinator and the Flower processes saw and logged holds no patient identifier.
    texts = {str(p): p.read_text(errors="replace").lower() for folder in (loopback.logs, out)
             for p in folder.rglob("*") if p.is_file() and p.suffix in {".log", ".json", ".md"}}
    assert len(texts) >= 1 + 1 + 2 * len(HOSPITALS)
    assert leaks(texts, {}, {i for i in identifiers(truth) if len(i) >= 4}) == []
