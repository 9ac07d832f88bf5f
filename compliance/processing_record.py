"""The GDPR Art. 30 record of processing activities, generated from the study and the site's config.

A record written by hand drifts from what the software does; this one is derived from the settings
that drive the processing (the study's target condition, labs, comorbidities, gene panel, image size,
DP settings; the site's id, consent policy and privacy budget), so changing the study changes the
record. What no config can know (the controller's name, its DPO, the legal basis, retention periods
set by hospital policy) is left as an explicit ``TO COMPLETE`` placeholder for the controller to fill.
``study`` and ``site`` are duck-typed (``polyclinic.study.Study``, ``client.site_config.SiteConfig``):
compliance never imports the packages above it.
"""

from __future__ import annotations

from typing import Any

TO_COMPLETE = "TO COMPLETE by the controller"
SYSTEM_NAMES = {"http://snomed.info/sct": "SNOMED CT", "http://hl7.org/fhir/sid/icd-10": "ICD-10",
                "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM", "http://loinc.org": "LOINC"}
MIN_CELL = 10
"""Smallest subgroup or validation cell whose statistics leave a site (DESIGN: k = 10)."""


def _code(token: str) -> str:
    """``system|code`` as a reader knows it: ``SNOMED CT 363358000``."""
    system, _, code = token.partition("|")
    return f"{SYSTEM_NAMES.get(system, system)} {code}"


def _controller(site: Any | None) -> dict[str, str]:
    where = f"the hospital operating site '{site.site.id}'" if site is not None else \
        "each participating hospital"
    return {"controller": f"{where}: {TO_COMPLETE} (name, address, contact)",
            "data_protection_officer": TO_COMPLETE,
            "joint_controllers": f"the consortium members of this study (Art. 26 arrangement): {TO_COMPLETE}",
            "processor": "the consortium's coordinator operator, for aggregation only: " + TO_COMPLETE}


def _personal_data(study: Any) -> list[dict[str, Any]]:
    records, genomics = study.records, study.genomics
    height, width = study.imaging.spatial_size
    return [
        {"modality": "records", "source": "FHIR Patient, Observation, Condition and Consent resources",
         "category": "data concerning health (Art. 9(1))",
         "items": ["medical record number: read at the site to link modalities, replaced by a keyed "
                   "pseudonym, never stored",
                   "sex; age at the index date " + f"{records.index_date.isoformat()} (the birth date is "
                   "read, never stored)",
                   "ethnicity (US Core race): racial or ethnic origin, a special category (Art. 9(1)); "
                   "used for fairness audits only, never as a model input",
                   f"latest laboratory results before the index date: {len(records.labs)} LOINC codes "
                   f"({', '.join(records.labs) or 'none'})",
                   f"conditions: the target condition ({', '.join(map(_code, records.target_codes))}) "
                   f"and {len(records.comorbidities)} comorbidities "
                   f"({', '.join(map(_code, records.comorbidities)) or 'none'})",
                   "research consent decisions (FHIR Consent)"]},
        {"modality": "imaging", "source": "DICOM series", "category": "data concerning health (Art. 9(1))",
         "items": [f"pixel data, resampled to {height} x {width} and normalised",
                   "headers de-identified per DICOM PS3.15 Basic Profile before anything is cached"]},
        {"modality": "genomics", "source": "genomic tables, one row per sample",
         "category": "genetic data (Art. 4(13)), a special category (Art. 9(1))",
         "items": [f"values of a {len(genomics.gene_panel)}-gene panel; every other column is dropped at "
                   "discovery", f"the sample's patient identifier (column '{genomics.patient_column}'): "
                   "pseudonymised, never stored"]},
    ]


def _measures(study: Any, site: Any | None) -> list[str]:
    dp = study.dp
    budget = (f"epsilon {site.privacy.epsilon:g}, delta {site.privacy.delta:g} for this site"
              if site is not None else "each site's own (epsilon, delta) from its site.toml")
    training = (f"differentially private training (DP-SGD, Opacus): per-example clipping at norm "
                f"{dp.max_grad_norm:g}, calibrated Gaussian noise, {dp.accountant.upper()} accountant; "
                f"budget {budget}; an append-only ledger refuses any round that would exceed it"
                if dp.enabled else "WARNING: this study disables differential privacy; its updates must "
                "not leave a site")
    return [
        "pseudonymisation: identifiers replaced by HMAC-SHA256 under a per-site secret key (STATE/keys, "
        "mode 0600) that never leaves the site",
        "de-identification before caching: DICOM PS3.15 Basic Application Level Confidentiality Profile; "
        "FHIR allow-list (coded clinical content only); genomics reduced to the gene panel",
        "federated learning: raw and de-identified data stay at the site; only model updates leave",
        training,
        f"aggregate statistics leave a site only for cells of at least {MIN_CELL} patients, with "
        "complementary suppression",
        "TLS on every connection and authenticated nodes (Flower SuperNode authentication)",
        "a signed (Ed25519), hash-chained, append-only audit trail per site and at the coordinator",
        f"consent enforced per patient ({site.consent.policy if site is not None else 'per-site'} policy) "
        "at the start of every round; erasure requests (Art. 17) excluded from every later round",
    ]


def processing_record(study: Any, site: Any | None = None) -> dict[str, Any]:
    """The Art. 30(1) record for ``study`` at one ``site`` (its SiteConfig) or, without one, the study's.

    JSON-able: strings, lists and dicts only. :func:`render_markdown` turns it into a document.
    """
    targets = ", ".join(map(_code, study.records.target_codes))
    site_id = site.site.id if site is not None else None
    return {
        "title": f"Record of processing activities (GDPR Art. 30): study '{study.name}'"
                 + (f" at site '{site_id}'" if site_id else ""),
        "study": study.name,
        "site": site_id,
        "controller": _controller(site),
        "purposes": [f"scientific research (Art. 89): training and evaluating a diagnostic model for the "
                     f"study's target condition ({targets})",
                     "auditing the model's subgroup fairness and the study's compliance"],
        "legal_basis": f"{TO_COMPLETE}: e.g. Art. 6(1)(e) or (f) with Art. 9(2)(j) and Art. 89(1) safeguards",
        "data_subjects": [
            "patients of the site whose records, images or genomic samples are in its data folder",
            "patients who refuse or withdraw consent: only their consent is read; nothing else of theirs "
            "is decoded or cached",
            "patients who requested erasure: only their identifier is pseudonymised to recognise them; "
            "nothing of theirs is read"],
        "personal_data": _personal_data(study),
        "special_categories": ["data concerning health", "genetic data", "racial or ethnic origin"],
        "recipients": [
            f"the consortium's coordinator ({study.federation.strategy} aggregation): differentially "
            "private model updates, example counts, epsilon spent and remaining, validation loss/AUROC and "
            f"fairness aggregates on at least {MIN_CELL} patients, the audit trail's head digest; no "
            "patient-level data",
            "researchers and clinicians of the consortium: the aggregated global model and its model card",
            "auditors and the data protection officer: the site's audit trail, ledger and reports"],
        "transfers": ["no personal data leaves the site; only model updates and aggregates do",
                      f"the coordinator's location and any Chapter V safeguard: {TO_COMPLETE}"],
        "retention": [
            "raw data stays in the hospital's systems under the hospital's own retention; none is copied",
            "de-identified features (STATE/cache): while the patient is in the cohort; removed when erasure "
            "is requested, and at the next site run after consent is withdrawn or the data removed",
            f"privacy ledger, audit trail and GDPR register (pseudonyms only): {TO_COMPLETE} (at least the "
            "study's duration; they prove the budget and the erasures were honoured)",
            f"trained models: {TO_COMPLETE}"],
        "measures": _measures(study, site),
    }


_SECTIONS = {"controller": "Controller", "purposes": "Purposes", "legal_basis": "Legal basis",
             "data_subjects": "Categories of data subjects", "personal_data": "Categories of personal data",
             "special_categories": "Special categories (Art. 9)", "recipients": "Recipients",
             "transfers": "Transfers to third countries", "retention": "Time limits for erasure",
             "measures": "Technical and organisational measures (Art. 32)"}


def _lines(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [f"- **{k.replace('_', ' ')}**: {v}" for k, v in value.items()]
    out = []
    for item in value:
        if isinstance(item, dict):  # a personal-data category
            out.append(f"- **{item['modality']}** ({item['source']}); {item['category']}:")
            out += [f"  - {line}" for line in item["items"]]
        else:
            out.append(f"- {item}")
    return out


def render_markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown document, one section per Art. 30(1) item."""
    parts = [f"# {record['title']}", ""]
    for key, heading in _SECTIONS.items():
        parts += [f"## {heading}", "", *_lines(record[key]), ""]
    return "\n".join(parts)
