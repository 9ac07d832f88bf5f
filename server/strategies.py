"""The study's ``[federation] strategy`` -> a Flower strategy (registry; names are the study's words).

Metric aggregation is ours, not Flower's default: a site withholds a validation metric it computed on too
few patients (NaN), so each metric is averaged, weighted by examples, over the sites that reported it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, FedProx, FedTrimmedAvg, Krum, Strategy

from server.settings import FederationSettings

WEIGHT_KEY = "num-examples"
StrategyFactory = Callable[[FederationSettings, dict], Strategy]
_STRATEGIES: dict[str, StrategyFactory] = {}


def register_strategy(name: str, factory: StrategyFactory, *, force: bool = False) -> None:
    if name in _STRATEGIES and not force:
        raise ValueError(f"strategy {name!r} is already registered; pass force=True to replace it")
    _STRATEGIES[name] = factory


def strategy_names() -> tuple[str, ...]:
    return tuple(sorted(_STRATEGIES))


def create_strategy(settings: FederationSettings) -> Strategy:
    """The configured strategy; every site must reply for a round only if ``min_sites`` say so."""
    common = {
        "fraction_train": settings.fraction_train, "fraction_evaluate": 1.0,
        "min_train_nodes": settings.min_sites, "min_evaluate_nodes": settings.min_sites,
        "min_available_nodes": settings.min_sites, "weighted_by_key": WEIGHT_KEY,
        "train_metrics_aggr_fn": average_reported, "evaluate_metrics_aggr_fn": average_reported,
    }
    try:
        factory = _STRATEGIES[settings.strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {settings.strategy!r}; "
                         f"choose one of {strategy_names()}") from None
    return factory(settings, common)


def average_reported(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Per metric, the example-weighted mean over the replies where it is a number (not NaN)."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    total = 0.0
    for record in records:
        metrics = next(iter(record.metric_records.values()))
        weight = float(metrics[weight_key])
        total += weight
        for key, value in metrics.items():
            if key == weight_key or not isinstance(value, int | float) or math.isnan(value):
                continue
            sums[key] = sums.get(key, 0.0) + weight * float(value)
            weights[key] = weights.get(key, 0.0) + weight
    averaged = {key: sums[key] / weights[key] for key in sums if weights[key] > 0}
    return MetricRecord({weight_key: total, **averaged})


register_strategy("fedavg", lambda s, common: FedAvg(**common))
register_strategy("fedprox", lambda s, common: FedProx(**common, proximal_mu=s.proximal_mu))
register_strategy("trimmed-mean", lambda s, common: FedTrimmedAvg(**common, beta=s.trim_beta))
register_strategy("krum", lambda s, common: Krum(**common, num_malicious_nodes=s.krum_byzantine))
