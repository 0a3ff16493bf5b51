"""Anomaly detection: per-tenant rolling statistics over GenAI spans (docs/tenancy.md).

Add :class:`AnomalyProcessor` after ``CostProcessor`` in an enrichment chain.
"""

from __future__ import annotations

from llmtrace_processors.anomaly.detector import (
    Anomaly,
    AnomalyConfig,
    AnomalyDetector,
    AnomalyType,
    Sample,
)
from llmtrace_processors.anomaly.processor import (
    ANOMALY_METRIC,
    AnomalyListener,
    AnomalyProcessor,
    sample_of,
)
from llmtrace_processors.anomaly.stats import Ewma, WindowCounter

__all__ = [
    "ANOMALY_METRIC",
    "Anomaly",
    "AnomalyConfig",
    "AnomalyDetector",
    "AnomalyListener",
    "AnomalyProcessor",
    "AnomalyType",
    "Ewma",
    "Sample",
    "WindowCounter",
    "sample_of",
]
