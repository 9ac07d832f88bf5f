"""``polyclinic gdpr access|erase``: serving the request (the parser is in ``polyclinic/gdpr_cli.py``, which
imports this only when the command runs: the site pipeline behind it is slow to import)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from client.cohort import CohortManifest, PatientEntry
from client.item_pipeline import ItemPipeline
from client.site import RECORDS, Site
from compliance import gdpr
from compliance.audit import AuditKeyError
from compliance.audit_chain import AuditUnreadable
from compliance.consent import decide
from compliance.gdpr_requests import AccessReport, Holdings, serve_access, serve_erasure
from modalities.base import Item, Rejection
from privacy.keys import secret_path
from privacy.ledger import LedgerError
from privacy.pseudonym import PSEUDONYM_KEY, Pseudonymiser

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def run(args: argparse.Namespace) -> int:
    from polyclinic.study import load_study

    patient_id = args.patient_id.strip()
    if not patient_id:
        print("polyclinic gdpr: PATIENT_ID is empty; give the patient's identifier in the hospital's records "
              "(FHIR MR identifier or DICOM PatientID)", file=sys.stderr)
        return EXIT_BAD_INPUT
    site = Site(args.site, load_study(args.study), args.state)
    try:
        return _serve(args, site, patient_id)
    except (gdpr.GdprRegisterError, AuditUnreadable, AuditKeyError, LedgerError) as exc:
        print(f"polyclinic gdpr: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _serve(args: argparse.Namespace, site: Site, patient_id: str) -> int:
    known_key = secret_path(site.state, PSEUDONYM_KEY).is_file()
    pseudonymiser = Pseudonymiser.for_state(site.state)
    pseudonym = pseudonymiser.patient(patient_id)
    erase = args.gdpr_command == "erase"
    holdings = _holdings(site, pseudonymiser, pseudonym,
                         read_consent=not erase and pseudonym not in gdpr.erased(site.state))
    serve = serve_erasure if erase else serve_access
    report = serve(site.state, site.config.site.id, pseudonym, holdings, site.config.privacy.delta)
    removed = _drop_from_cache(site, pseudonym) if erase else 0
    if removed:
        report = replace(report, holdings=replace(holdings, cached=_cached(site, pseudonym)))
    if not known_key:
        print(f"note: no site run has used the state {site.state} yet; the request is recorded there, so "
              "make sure the site trains with this state (--state, or [site] state in site.toml)",
              file=sys.stderr)
    if erase and not holdings.found_in:
        print(f"note: no data of this patient is at site {report.site_id} now; the erasure is recorded and "
              "excludes them if their data arrives later", file=sys.stderr)
    if args.json:
        payload = {"request": args.gdpr_command, "patient_id": patient_id, **report.to_json()}
        sys.stdout.write(json.dumps(payload | ({"cache_removed": removed} if erase else {}),
                                    sort_keys=True) + "\n")
    else:
        print(_render(report, patient_id, removed if erase else None))
    return EXIT_OK


def _holdings(site: Site, pseudonymiser: Pseudonymiser, pseudonym: str, *, read_consent: bool) -> Holdings:
    """Where the patient's items are (the site's own discovery and pseudonyms), their consent, their cache."""
    found: dict[str, Item] = {}
    for name, modality in site.modalities.items():
        folder = site.root / modality.folder
        if folder.is_dir():
            for item in modality.discover(folder).items:  # the last one wins, as in Site.run
                if pseudonymiser.patient(item.patient_id) == pseudonym:
                    found[name] = item
    consent = _consent(site, found.get(RECORDS)) if read_consent else gdpr.ERASED
    return Holdings(tuple(found), consent, _cached(site, pseudonym))


def _cached(site: Site, pseudonym: str) -> tuple[str, ...]:
    entries = entry.entries if (entry := _manifest_entry(site, pseudonym)) else {}
    return tuple(m for m in site.modalities if m in entries and site.cache.has(entries[m]))


def _consent(site: Site, record: Item | None) -> str:
    if record is None:
        return "records.absent"
    content = ItemPipeline(site.modalities[RECORDS], site.recipe(RECORDS), None).read(record)
    if isinstance(content, Rejection):
        return content.code
    return decide(content.consents, site.config.consent.policy, site.now).code


def _manifest_entry(site: Site, pseudonym: str) -> PatientEntry | None:
    if not (site.state / "cache").is_dir():
        return None
    try:
        manifest = CohortManifest.load(site.state)
    except FileNotFoundError:
        return None
    return next((p for p in manifest.patients if p.pseudonym == pseudonym), None)


def _drop_from_cache(site: Site, pseudonym: str) -> int:
    """Remove the patient from the prepared cohort and delete their cached features now (Art. 17
    'without undue delay'); the manifest is rewritten first so training never lists a missing entry."""
    entry = _manifest_entry(site, pseudonym)
    if entry is None:
        return 0
    manifest = CohortManifest.load(site.state)
    kept = [p for p in manifest.patients if p.pseudonym != pseudonym]
    CohortManifest(manifest.site_id, manifest.study, kept).save(site.state)
    removed = [key for key in entry.entries.values() if site.cache.has(key)]
    for key in removed:
        site.cache.path(key).unlink(missing_ok=True)
    return len(removed)


def _render(report: AccessReport, patient_id: str, removed: int | None) -> str:
    held = report.holdings
    lines = [f"patient {patient_id} at site {report.site_id}: pseudonym {report.pseudonym}",
             f"data at the site now: {', '.join(held.found_in) or 'none found'}",
             f"consent now: {held.consent}",
             f"cached de-identified features: {', '.join(held.cached) or 'none'}",
             f"erased: {'since ' + report.erased_at if report.erased_at else 'no'}"]
    if removed is not None:
        lines.append(f"erasure recorded; cached feature files removed: {removed}; every later site run "
                     f"excludes this patient ({gdpr.ERASED})")
    lines.append(f"requests recorded: {', '.join(f'{r.kind} {r.created_at}' for r in report.requests)}")
    lines.append(f"training rounds that used their data: {len(report.rounds)}")
    for use in report.rounds:
        cost = f"epsilon {use.epsilon:.3f}" if use.epsilon is not None else "no spend recorded"
        lines.append(f"  run {use.run_id} round {use.round} ({use.recorded_at}): {cost}")
    lines.append(f"residual influence: {report.bound.statement()}")
    return "\n".join(lines)
