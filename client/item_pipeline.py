"""read -> de-identify -> features (-> cache) for one item of one modality.

Every failure becomes a :class:`Rejection`: the modality's own (``ItemRejected``) or, for anything a
library throws unexpectedly, an ``<modality>.internal-error`` reported by exception type only, since
library messages may echo identifying values. The Site and the benchmarks both go through here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from client.cache import FeatureCache
from modalities.base import Item, ItemRejected, Modality, Rejection
from privacy.deidentify import DeidContext, deidentify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    features: dict[str, Any] | None
    rejection: Rejection | None = None
    cached: bool = False
    written: bool = False


class ItemPipeline:
    def __init__(self, modality: Modality, recipe: str, cache: FeatureCache | None) -> None:
        self.modality = modality
        self.recipe = recipe
        self.cache = cache

    def cache_key(self, item: Item, ctx: DeidContext) -> str:
        return ctx.pseudonymiser.cache_key(ctx.pseudonym, item.fingerprint, self.recipe)

    def read(self, item: Item) -> Any | Rejection:
        """The item's content, still identifying: only consent decisions and de-identification see it."""
        try:
            return self.modality.read(item)
        except ItemRejected as exc:
            return exc.rejection
        except Exception as exc:  # noqa: BLE001  (a library failing on one file must not stop the site)
            return self._internal_error(item, exc)

    def features(self, item: Item, ctx: DeidContext, content: Any | None = None) -> Outcome:
        """Features from the cache when the inputs and recipe are unchanged, else computed (and cached)."""
        key = self.cache_key(item, ctx)
        if self.cache is not None and self.cache.has(key):
            return Outcome(self.cache.load(key), cached=True)
        if content is None:
            content = self.read(item)
        if isinstance(content, Rejection):
            return Outcome(None, content)
        try:
            features = self.modality.features(deidentify(self.modality.name, content, ctx))
        except ItemRejected as exc:
            return Outcome(None, exc.rejection)
        except Exception as exc:  # noqa: BLE001
            return Outcome(None, self._internal_error(item, exc))
        if self.cache is None:
            return Outcome(features)
        self.cache.save(key, features)
        return Outcome(features, written=True)

    def _internal_error(self, item: Item, exc: Exception) -> Rejection:
        name = self.modality.name
        log.warning("%s: unexpected %s while processing an item (counted as a rejection)", name,
                    type(exc).__name__)
        return Rejection(f"{name}.internal-error", item.where,
                         f"unexpected {type(exc).__name__} while processing this input",
                         "report this to the Polyclinic maintainers with the file, if you may share it")
