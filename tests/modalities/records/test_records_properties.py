"""Property tests: whatever is in the records folder, discover never crashes and accounts for everything."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modalities.records import RecordsModality
from modalities.records.settings import RecordsSettings

SETTINGS = RecordsSettings(
    target_codes=("http://hl7.org/fhir/sid/icd-10|C34",), index_date=dt.date(2025, 1, 1)
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
ids = st.sampled_from(["p1", "p2", "o1", "c1", "x y", ""]) | TEXT
references = st.sampled_from(["Patient/p1", "Patient/p2", "urn:uuid:1", "Group/g", "Patient/", "#c"]) | TEXT
mr = st.fixed_dictionaries(
    {
        "type": st.just(
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
        ),
        "value": st.sampled_from(["M1", "M2", " "]),
    }
)
codes = st.fixed_dictionaries(
    {
        "coding": st.lists(
            st.fixed_dictionaries(
                {
                    "system": st.sampled_from(["http://loinc.org", "http://hl7.org/fhir/sid/icd-10"]),
                    "code": st.sampled_from(["718-7", "C34.1"]),
                }
            ),
            min_size=1,
            max_size=2,
        )
    }
)
subject = st.fixed_dictionaries({"reference": references})
plausible = st.one_of(  # close to valid, so linking, duplicates and orphans are exercised
    st.fixed_dictionaries(
        {"resourceType": st.just("Patient"), "id": st.sampled_from(["p1", "p2", "p3"])},
        optional={"identifier": st.lists(mr, max_size=2), "gender": st.just("female")},
    ),
    st.fixed_dictionaries(
        {
            "resourceType": st.just("Observation"),
            "status": st.just("final"),
            "code": codes,
            "subject": subject,
        },
        optional={"id": ids},
    ),
    st.fixed_dictionaries({"resourceType": st.just("Condition"), "code": codes, "subject": subject}),
    st.fixed_dictionaries(
        {
            "resourceType": st.just("Consent"),
            "status": st.just("active"),
            "subject": subject,
            "decision": st.sampled_from(["permit", "deny"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "resourceType": st.just("Consent"),
            "status": st.just("active"),
            "scope": codes,
            "category": st.lists(codes, min_size=1, max_size=1),
            "patient": subject,
        }
    ),
)
noisy = st.fixed_dictionaries(
    {
        "resourceType": st.sampled_from(
            ["Patient", "Observation", "Condition", "Consent", "Encounter", "Bundle", "Spaceship", "Quantity"]
        )
        | json_values
    },
    optional={
        "id": ids,
        "subject": subject | json_values,
        "status": st.sampled_from(["final", "bogus"]) | json_values,
        "identifier": st.lists(mr, max_size=2),
        "gender": st.sampled_from(["female", "robot"]),
        "decision": st.sampled_from(["permit", "deny"]),
        "valueQuantity": st.fixed_dictionaries({"value": scalars}),
        "entry": json_values,
        "birthDate": st.sampled_from(["1970", "1970-13-01", "x"]),
        "extra": json_values,
    },
)
resources = plausible | plausible | noisy
bundles = st.builds(
    lambda entries, urls: {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": url, "resource": r} if isinstance(url, str) else r
            for r, url in zip(entries, urls, strict=False)
        ],
    },
    st.lists(resources | json_values, max_size=5),
    st.lists(st.sampled_from(["urn:uuid:1", None, "urn:uuid:2"]), min_size=5, max_size=5),
)
lines = (
    (resources | bundles | json_values).map(json.dumps)
    | TEXT
    | st.sampled_from(["", "   ", "{", "NaN", "[1,"])
)
json_files = (resources | bundles | json_values).map(json.dumps) | TEXT
files = st.lists(
    st.tuples(
        st.sampled_from([".json", ".ndjson", ".JSON", ".txt"]),
        st.one_of(json_files, st.lists(lines, max_size=6).map("\n".join)),
        st.booleans(),
    ),
    max_size=6,
)


def discover(tree: list[tuple[str, str, bool]]):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "records"
        for number, (suffix, text, nested) in enumerate(tree):
            path = root / ("deep/er" if nested else "") / f"f{number}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return RecordsModality(SETTINGS).discover(root)


def accounted(disc) -> int:
    return (
        sum(len(i.payload.resources) for i in disc.items) + sum(disc.skipped.values()) + len(disc.rejections)
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files)
def test_any_folder_is_discovered_and_fully_accounted_for(tree):
    disc = discover(tree)
    assert accounted(disc) == disc.found
    assert len({i.patient_id for i in disc.items}) == len(disc.items)  # one item per patient
    for rejection in disc.rejections:
        assert rejection.code.startswith("records.")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(lines, max_size=8), min_size=1, max_size=3))
def test_every_ndjson_line_is_counted_once(contents):
    disc = discover([(".ndjson", "\n".join(lines_), False) for lines_ in contents])
    non_blank = [sum(1 for line in "\n".join(c).split("\n") if line.strip()) for c in contents]
    assert disc.found == sum(n or 1 for n in non_blank)  # a file with no lines is one empty-file rejection
    assert accounted(disc) == disc.found


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(blob):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "records"
        root.mkdir()
        (root / "blob.json").write_bytes(blob)
        (root / "blob.ndjson").write_bytes(blob)
        disc = RecordsModality(SETTINGS).discover(root)
    assert accounted(disc) == disc.found >= 2
