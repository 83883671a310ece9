"""Evaluation: OpenGait-compatible rank-1 protocols with bootstrap CIs, OpenGait's mAP, and the
GEI baseline."""

from gaitlib.evaluation.distance import METRICS, nearest_per_group, pairwise_distance
from gaitlib.evaluation.gei import gei_baseline, gei_features
from gaitlib.evaluation.mean_ap import mean_average_precision
from gaitlib.evaluation.protocols import (
    PROTOCOLS,
    EvaluationResult,
    evaluate,
    protocol_for,
)

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "EvaluationResult",
    "evaluate",
    "gei_baseline",
    "gei_features",
    "mean_average_precision",
    "nearest_per_group",
    "pairwise_distance",
    "protocol_for",
]
