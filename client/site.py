"""One hospital: its data folder, its state, its configuration, and the path every patient walks.

``polyclinic site check`` and ``site prepare`` and the Flower ClientApp all go through :meth:`Site.run`,
so what the steward checks is exactly what training uses. The order of the path matters for privacy:
identifiers are pseudonymised before anything is counted, consent is decided from the records before
any image of that patient is decoded, and features only ever see de-identified content.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import modalities.genomics
import modalities.imaging
import modalities.records  # noqa: F401
import privacy.dicom_deid
import privacy.fhir_scrub
import privacy.genomics_deid  # noqa: F401
from client.cache import FeatureCache
from client.cohort import CohortManifest, PatientEntry, assign_split
from client.item_pipeline import ItemPipeline, Outcome
from client.parallel import Task, featurise, file_mapper
from client.site_config import SiteConfig, load_site_config, resolve_state
from client.site_report import CacheCounts, ModalityCounts, SiteReport
from compliance import gdpr
from compliance.consent import CODES as CONSENT_CODES
from compliance.consent import decide
from modalities.base import Discovery, Item, Modality, Rejection, create_modality
from privacy.deidentify import DeidContext
from privacy.pseudonym import Pseudonymiser

log = logging.getLogger(__name__)

FEATURES_VERSION = "2"
"""Part of every cache key: bump it when feature code changes so old entries are rebuilt, not trusted."""
RECORDS = "records"
MODALITY_ORDER = (RECORDS, "imaging", "genomics")
"""Records first: consent and the label come from them, so a refusing patient's images are never decoded."""

Progress = Callable[[str, int, int], None]
Purpose = Literal["research", "care"]


@dataclass
class _Patient:
    items: dict[str, Item] = field(default_factory=dict)
    entries: dict[str, str] = field(default_factory=dict)
    label: int | None = None
    sensitive: dict[str, str] = field(default_factory=dict)


class Site:
    """A hospital's data folder seen through one study."""

    def __init__(self, root: Path, study: Any, state: Path | None = None, *,
                 now: dt.datetime | None = None, config: SiteConfig | None = None,
                 purpose: Purpose = "research") -> None:
        """``config`` replaces the folder's site.toml; ``purpose`` "care" (one patient's prediction for their
        clinician) skips the research-consent decision, which governs research use only."""
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such site folder; pass the folder holding imaging/, "
                                    "records/ and genomics/")
        self.root = root
        self.study = study
        self.purpose = purpose
        self.config: SiteConfig
        if config is None:
            self.config, self.config_defaulted = load_site_config(root)
        else:
            self.config, self.config_defaulted = config, False
        self.state = resolve_state(root, self.config, state)
        self.now = now or dt.datetime.now(dt.UTC)
        self.modalities: dict[str, Modality] = {
            name: create_modality(name, settings=getattr(study, name)) for name in MODALITY_ORDER}

    @property
    def cache(self) -> FeatureCache:
        return FeatureCache(self.state / "cache")

    def recipe(self, name: str) -> str:
        """What a modality's cached features depend on besides the input bytes."""
        settings = getattr(self.study, name)
        version = getattr(self.modalities[name], "recipe_version", "")  # code and tables behind the features
        return f"{FEATURES_VERSION}|{name}|{version}|{settings.model_dump_json()}"

    def run(self, *, build_cache: bool, progress: Progress | None = None,
            workers: int = 1) -> SiteReport:
        """Discover, pseudonymise, read, consent, de-identify and featurise every patient.

        With ``build_cache`` the features are written to ``STATE/cache`` (reusing unchanged entries)
        and the cohort manifest is saved; without it nothing but the site key is written. ``workers``
        processes featurise images and genomics when there is enough work for them.
        """
        started = time.perf_counter()
        pseudonymiser = Pseudonymiser.for_state(self.state)
        report = SiteReport(self.config.site.id, self.config_defaulted, self.config.consent.policy)
        patients = self._discover(pseudonymiser, report, progress, workers)
        cache = self.cache if build_cache else None
        if cache is not None:
            report.cache = CacheCounts()
        pipelines = {name: ItemPipeline(m, self.recipe(name), cache) for name, m in self.modalities.items()}
        tasks = []
        erased = gdpr.erased(self.state)  # GDPR Art. 17: before consent, so nothing of theirs is read
        previous = self._previous_cohort() if build_cache else frozenset()
        for done, (pseudonym, patient) in enumerate(sorted(patients.items()), start=1):
            if pseudonym in erased:
                report.patients.consent_excluded[gdpr.ERASED] += 1
                continue
            why_not = self._consent_and_records(pseudonymiser, pseudonym, patient, report, pipelines[RECORDS])
            if why_not is None:
                tasks += [Task(pseudonym, name, item)
                          for name, item in patient.items.items() if name != RECORDS]
            elif why_not in CONSENT_CODES and pseudonym in previous:
                report.patients.consent_withdrawn += 1
            if progress:
                progress("records and consent", done, len(patients))
        results = featurise(tasks, pipelines, pseudonymiser, self.study.records.index_date, workers)
        for done, result in enumerate(results, start=1):
            self._count(report, result.task.modality, result.outcome)
            if result.outcome.features is not None:
                patients[result.task.pseudonym].entries[result.task.modality] = result.outcome.key
            if progress:
                progress("images and genomics", done, len(tasks))
        included = {p: pt for p, pt in patients.items() if pt.label is not None}
        splits = assign_split({p: pt.label for p, pt in included.items()},
                              self.study.split.validation_fraction, self.study.split.seed)
        for pseudonym, patient in included.items():
            report.patients.split[splits[pseudonym]] += 1
            report.patients.by_combination["+".join(m for m in MODALITY_ORDER if m in patient.entries)] += 1
        report.patients.included = len(included)
        report.patients.positives = sum(pt.label or 0 for pt in included.values())
        if cache is not None and report.cache is not None:
            manifest = CohortManifest(
                site_id=self.config.site.id, study=self.study.name,
                patients=[PatientEntry(p, splits[p], pt.label or 0, pt.sensitive, pt.entries)
                          for p, pt in sorted(included.items())])
            manifest.save(self.state)
            report.cache.pruned = cache.prune(manifest.keys())
        report.seconds = time.perf_counter() - started
        log.info("site %s: %s", report.site_id, report.counts())
        return report

    def _discover(self, pseudonymiser: Pseudonymiser, report: SiteReport,
                  progress: Progress | None, workers: int) -> dict[str, _Patient]:
        patients: dict[str, _Patient] = {}
        map_files = file_mapper(workers)
        for name, modality in self.modalities.items():
            folder = self.root / modality.folder
            discovery = modality.discover(folder, map_files) if folder.is_dir() else Discovery(name)
            if not folder.is_dir():
                discovery.notes.append(f"no {modality.folder}/ folder: every patient lacks this modality")
            report.modalities[name] = ModalityCounts(
                found=discovery.found, items=len(discovery.items), skipped=dict(discovery.skipped),
                notes=list(discovery.notes))
            for rejection in discovery.rejections:
                report.reject(name, rejection)
            for item in discovery.items:
                patients.setdefault(pseudonymiser.patient(item.patient_id), _Patient()).items[name] = item
            if progress:
                progress(f"discovered {name}", 1, 1)
        report.patients.discovered = len(patients)
        return patients

    def _consent_and_records(self, pseudonymiser: Pseudonymiser, pseudonym: str, patient: _Patient,
                             report: SiteReport, pipeline: ItemPipeline) -> str | None:
        """Records first: the consent decision and the label; the reason code when the patient is not used."""
        record_item = patient.items.get(RECORDS)
        if record_item is None:
            report.patients.excluded["cohort.no-records"] += 1
            return "cohort.no-records"
        content = pipeline.read(record_item)
        if isinstance(content, Rejection):
            report.reject(RECORDS, content)
            report.patients.excluded["cohort.records-rejected"] += 1
            return "cohort.records-rejected"
        if self.purpose == "research":
            decision = decide(content.consents, self.config.consent.policy, self.now)
            if not decision.allowed:
                report.patients.consent_excluded[decision.code] += 1
                return decision.code
        ctx = DeidContext(pseudonymiser, pseudonym, self.study.records.index_date)
        outcome = pipeline.features(record_item, ctx, content)
        self._count(report, RECORDS, outcome)
        if outcome.features is None:
            report.patients.excluded["cohort.records-rejected"] += 1
            return "cohort.records-rejected"
        patient.label = int(outcome.features["label"])
        patient.sensitive = dict(outcome.features["sensitive"])
        patient.entries[RECORDS] = outcome.key
        return None

    def _previous_cohort(self) -> frozenset[str]:
        """Pseudonyms of the last prepared cohort: who was in it and is now refused has withdrawn."""
        try:
            return frozenset(p.pseudonym for p in CohortManifest.load(self.state).patients)
        except FileNotFoundError:
            return frozenset()

    @staticmethod
    def _count(report: SiteReport, name: str, outcome: Outcome) -> None:
        if report.cache is not None:
            report.cache.reused += outcome.cached
            report.cache.written += outcome.written
        if outcome.features is not None:
            report.modalities[name].accepted += 1
        elif outcome.rejection is not None:
            report.reject(name, outcome.rejection)
