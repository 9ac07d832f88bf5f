"""FHIR records: Patient, Observation (LOINC labs), Condition (SNOMED CT / ICD-10) and Consent.

``discover`` reads every ``*.json`` (a Bundle of any type, or one resource) and ``*.ndjson`` or
``*.ndjson.gz`` (bulk export, one resource per line) under the records folder, validates the four
resource types used with fhir.resources (release per resource, see :mod:`modalities.records.releases`),
sets aside study lab results in units it cannot convert (:mod:`modalities.records.lab_units`), links
the rest to their patient and yields one item per patient. Other resource types are counted in
``skipped``; everything else found becomes a rejection with a code from
:data:`modalities.records.reasons.REASONS`, so ``found == used + skipped + rejected`` holds for every
folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from modalities.base import Discovery, FileMapper, Item, Rejection, register_modality
from modalities.files import walk_files
from modalities.records.codes import concept_matches
from modalities.records.condition_dates import is_dated
from modalities.records.features import RecordFeatures, recipe_version
from modalities.records.lab_units import unit_problem
from modalities.records.linking import PatientGroup, Validated, link
from modalities.records.reading import RawResource, read_records_file
from modalities.records.reasons import MODALITY, reject
from modalities.records.record import PatientRecord, RecordsPayload
from modalities.records.releases import USED_TYPES, Release, choose_release, validate
from modalities.records.settings import RecordsSettings

log = logging.getLogger(__name__)


@register_modality
class RecordsModality:
    name: ClassVar[str] = MODALITY
    folder: ClassVar[str] = "records"

    def __init__(self, settings: RecordsSettings) -> None:
        self.settings = settings
        self._features = RecordFeatures(settings)
        self.recipe_version = recipe_version()
        """Changes whenever the recipe's code or lab table changes what a record turns into: part of
        what cached features depend on, beside the input bytes and the study settings."""

    def discover(self, root: Path, map_files: FileMapper = map) -> Discovery:  # one process: few files
        discovery = Discovery(self.name)
        walk = walk_files(root, modality=self.name, site_root=root.parent)
        discovery.rejections.extend(walk.rejections)
        discovery.found += len(walk.rejections)
        validated: list[Validated] = []
        skipped: Counter[str] = Counter()
        for path in walk.files:
            content = read_records_file(path, root.parent)
            discovery.found += content.found
            discovery.rejections.extend(content.rejections)
            for raw in content.resources:
                if raw.type not in USED_TYPES:
                    skipped[raw.type] += 1
                elif isinstance(checked := self._checked(raw), Validated):
                    validated.append(checked)
                else:
                    discovery.rejections.append(checked)
        groups, rejections = link(validated)
        discovery.rejections.extend(rejections)
        site_release = choose_release(frozenset(v.models) for v in validated)
        discovery.items = [self._item(group, site_release) for group in groups]
        discovery.skipped = dict(sorted(skipped.items()))
        releases = Counter(item.payload.fhir_version for item in discovery.items)
        if releases:
            discovery.notes.append(
                "FHIR release per patient: "
                + ", ".join(f"{count} read as {release}" for release, count in sorted(releases.items()))
            )
        undated = self._undated_study_conditions(validated)
        if undated:
            discovery.notes.append(
                f"{undated} Condition(s) with a study code carry no onset, recorded or abatement date "
                "and are not counted (nothing shows they were known by the index date)"
            )
        log.info(
            "records: %d inputs, %d patients, %d skipped, %d rejected",
            discovery.found,
            len(discovery.items),
            sum(skipped.values()),
            len(discovery.rejections),
        )
        return discovery

    def _item(self, group: PatientGroup, site_release: Release) -> Item:
        resources = [group.patient, *group.members]
        release = choose_release((frozenset(r.models) for r in resources), site_release)
        models = tuple(r.models.get(release, r.model) for r in resources)
        canonical = json.dumps([r.raw.data for r in resources], sort_keys=True, separators=(",", ":"))
        return Item(
            self.name,
            group.key,
            group.patient.raw.where,
            hashlib.sha256(canonical.encode()).hexdigest(),
            RecordsPayload(release, models),
        )

    def _checked(self, raw: RawResource) -> Validated | Rejection:
        """The validated resource, or why it is set aside: invalid in every release, or a study lab
        result in a unit that cannot be converted to the lab's canonical unit."""
        checked = _validated(raw)
        if not isinstance(checked, Validated) or raw.type != "Observation":
            return checked
        model = checked.model
        for ref, tokens in self._features.labs.values():
            if concept_matches(model.code, tokens) and (problem := unit_problem(model.valueQuantity, ref)):
                return reject(
                    "unknown-unit",
                    raw.where,
                    f"{problem}; the result is not used",
                    "code valueQuantity in UCUM (system http://unitsofmeasure.org, code); if the unit is "
                    "right, add it with its factor to modalities/records/lab_units.py",
                )
        return checked

    def _undated_study_conditions(self, validated: list[Validated]) -> int:
        tokens = (*self._features.targets, *self._features.comorbidities)
        return sum(
            1
            for v in validated
            if v.raw.type == "Condition" and concept_matches(v.model.code, tokens) and not is_dated(v.model)
        )

    def read(self, item: Item) -> PatientRecord:
        """The patient's resources sorted by type; discovery already validated them."""
        return PatientRecord.from_payload(item.payload)

    def features(self, content: PatientRecord) -> dict[str, Any]:
        """``records`` (float32, laid out by :func:`feature_names`), ``label`` and ``sensitive``."""
        return self._features(content)


def _validated(raw: RawResource) -> Validated | Rejection:
    """The resource's models, or why no supported release accepts it (element paths, never values)."""
    models, problems = validate(raw.data)
    if models:
        return Validated(raw, models)
    return reject(
        "invalid-resource",
        raw.where,
        f"this {raw.type} is valid in no supported FHIR release ({problems})",
        "fix the listed elements; see the resource's page in the FHIR specification of the release "
        "the system exports (R4 or R5)",
    )
