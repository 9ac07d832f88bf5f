"""The Art. 30 record is generated from the study and site config: change them and the record follows."""

from __future__ import annotations

import json

from client.site_config import PrivacySection, SiteConfig, SiteSection
from compliance.processing_record import TO_COMPLETE, processing_record, render_markdown
from polyclinic.study import default_study

ART30 = ("controller", "purposes", "data_subjects", "personal_data", "recipients", "transfers", "retention",
         "measures")
SITE = SiteConfig(site=SiteSection(id="hospital-a"), privacy=PrivacySection(epsilon=3.5, delta=1e-6))


def _text(record):
    return json.dumps(record)


def test_every_art30_item_is_present_and_derived_from_the_config():
    study = default_study()
    record = processing_record(study, SITE)
    assert all(record[key] for key in ART30)
    assert json.loads(json.dumps(record)) == record  # JSON-able as it is
    assert record["site"] == "hospital-a" and record["study"] == study.name
    controller = record["controller"]["controller"]
    assert "hospital-a" in controller and TO_COMPLETE in controller
    assert "SNOMED CT 363358000" in record["purposes"][0] and "ICD-10 C34" in record["purposes"][0]
    by_modality = {c["modality"]: c for c in record["personal_data"]}
    assert set(by_modality) == {"records", "imaging", "genomics"}
    genetic = by_modality["genomics"]["category"]
    assert "genetic data" in genetic and "Art. 9" in genetic
    assert f"{len(study.genomics.gene_panel)}-gene panel" in _text(by_modality["genomics"])
    records = _text(by_modality["records"])
    assert all(lab in records for lab in study.records.labs) and "ethnicity" in records and "sex" in records
    assert set(record["special_categories"]) == {"data concerning health", "genetic data",
                                                 "racial or ethnic origin"}
    measures = _text(record["measures"])
    for measure in ("HMAC-SHA256", "PS3.15", "DP-SGD", "epsilon 3.5, delta 1e-06", "TLS", "Ed25519",
                    "opt-in"):
        assert measure in measures
    assert "no patient-level data" in record["recipients"][0]


def test_changing_the_study_or_site_changes_the_record():
    study = default_study()
    base = processing_record(study, SITE)
    other = study.model_copy(update={
        "name": "copd-risk",
        "records": study.records.model_copy(update={"target_codes": ("http://snomed.info/sct|13645005",),
                                                    "labs": ("718-7",)}),
        "genomics": study.genomics.model_copy(update={"gene_panel": ("G001", "G002", "G003")}),
        "dp": study.dp.model_copy(update={"enabled": False, "accountant": "rdp"}),
    })
    changed = processing_record(other, SITE.model_copy(update={"consent": SITE.consent.model_copy(
        update={"policy": "opt-out"})}))
    assert changed != base and changed["study"] == "copd-risk"
    assert "SNOMED CT 13645005" in changed["purposes"][0] and "C34" not in changed["purposes"][0]
    assert "3-gene panel" in _text(changed["personal_data"]) and "1 LOINC codes (718-7)" in _text(changed)
    assert "disables differential privacy" in _text(changed["measures"]) and "DP-SGD" not in _text(changed)
    assert "opt-out" in _text(changed["measures"])


def test_the_study_record_without_a_site_and_its_markdown():
    record = processing_record(default_study())
    assert record["site"] is None and "each site's own (epsilon, delta)" in _text(record["measures"])
    markdown = render_markdown(record)
    assert markdown.startswith("# Record of processing activities (GDPR Art. 30)")
    for heading in ("## Controller", "## Purposes", "## Categories of data subjects", "## Recipients",
                    "## Transfers to third countries", "## Time limits for erasure",
                    "## Technical and organisational measures"):
        assert heading in markdown
    assert "  - values of a 64-gene panel" in markdown
