import json

from client.site_report import ModalityCounts, SiteReport
from modalities.base import Rejection


def test_counts_are_json_ready_and_keep_reason_codes():
    report = SiteReport("hospital-a", False, "opt-in")
    report.modalities["imaging"] = ModalityCounts(found=3, items=1)
    report.reject("imaging", Rejection("imaging.not-dicom", "imaging/notes.txt", "not DICOM"))
    report.reject("imaging", Rejection("imaging.not-dicom", "imaging/x.txt", "not DICOM"))
    report.patients.consent_excluded["consent.denied"] += 2
    counts = json.loads(json.dumps(report.counts()))
    assert counts["modalities"]["imaging"]["rejected"] == {"imaging.not-dicom": 2}
    assert counts["patients"]["consent_excluded"] == {"consent.denied": 2}
    assert "rejections" not in counts and "notes.txt" not in json.dumps(counts)
    assert [r["where"] for r in report.to_json()["rejections"]] == ["imaging/notes.txt", "imaging/x.txt"]
