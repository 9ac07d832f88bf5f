"""Gzipped NDJSON bulk exports (``*.ndjson.gz``) read like plain NDJSON; broken gzip is rejected."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modalities.records import RecordsModality
from modalities.records.settings import RecordsSettings

DATA = Path(__file__).parents[2] / "data" / "fhir"
SETTINGS = RecordsSettings(
    target_codes=("http://hl7.org/fhir/sid/icd-10|C34",), index_date=dt.date(2025, 1, 1)
)


def _summary(disc) -> tuple:
    items = sorted((i.patient_id, i.fingerprint, len(i.payload.resources)) for i in disc.items)
    rejections = sorted((r.code, r.where.replace(".ndjson.gz", ".ndjson")) for r in disc.rejections)
    return disc.found, items, rejections, disc.skipped


def test_a_gzipped_bulk_export_reads_like_the_plain_one(tmp_path):
    plain = tmp_path / "plain" / "records"
    zipped = tmp_path / "zipped" / "records"
    shutil.copytree(DATA / "bulk", plain)
    zipped.mkdir(parents=True)
    for path in plain.iterdir():
        suffix = ".NDJSON.GZ" if path.stem == "Patient" else ".ndjson.gz"  # any case, as for .json
        (zipped / f"{path.stem}{suffix}").write_bytes(gzip.compress(path.read_bytes()))
    modality = RecordsModality(SETTINGS)
    plain_disc, zipped_disc = modality.discover(plain), modality.discover(zipped)
    assert zipped_disc.items and _summary(zipped_disc) == _summary(plain_disc)
    assert {r.where.split("#")[0] for r in zipped_disc.rejections} >= {"records/Observation.ndjson.gz"}


def test_broken_gzip_and_other_compressed_files_are_rejected(tmp_path):
    root = tmp_path / "records"
    root.mkdir()
    whole = gzip.compress(b'{"resourceType": "Patient", "id": "p1"}\n')
    (root / "cut.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    (root / "plain.ndjson.gz").write_text('{"resourceType": "Patient", "id": "p2"}\n')
    (root / "bundle.json.gz").write_bytes(whole)
    (root / "ok.ndjson.gz").write_bytes(whole)
    disc = RecordsModality(SETTINGS).discover(root)
    assert sorted((r.code, r.where) for r in disc.rejections) == [
        ("records.invalid-gzip", "records/cut.ndjson.gz"),
        ("records.invalid-gzip", "records/plain.ndjson.gz"),
        ("records.unsupported-format", "records/bundle.json.gz"),
    ]
    assert [i.patient_id for i in disc.items] == ["p1"] and disc.found == 4


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([
    '{"resourceType":"Patient","id":"p1"}',
    '{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}',
    '{"resourceType":"Encounter","status":"finished"}',
    '{"resourceType":',
    "",
    "[]",
]), max_size=8), st.integers(0, 9))
def test_gzip_never_changes_what_is_found(lines, level):
    text = "\n".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        plain, zipped = Path(tmp) / "a" / "records", Path(tmp) / "b" / "records"
        plain.mkdir(parents=True)
        zipped.mkdir(parents=True)
        (plain / "x.ndjson").write_text(text)
        (zipped / "x.ndjson.gz").write_bytes(gzip.compress(text.encode(), compresslevel=level))
        assert _summary(RecordsModality(SETTINGS).discover(zipped)) == _summary(
            RecordsModality(SETTINGS).discover(plain)
        )
