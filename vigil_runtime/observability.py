"""Logging and metrics shared by the worker, the recorder and the API.

Log lines carry model_id, event_id, topic, partition and offset where they apply, and never a
patient identifier: events are logged by id, not by content.
"""

from __future__ import annotations

import collections
import logging
import sys
import time

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from vigil_runtime.settings import Settings


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelName(settings.log_level.upper())
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    quiet_repeats("aiokafka")


class RepeatFilter(logging.Filter):
    """Lets a message through once per `every` seconds (per logger and message template), and says
    how many repeats it held back. While a broker is down, the Kafka client logs the same
    connection error dozens of times a second per component; the first one says it all."""

    def __init__(self, every: float = 30.0) -> None:
        super().__init__()
        self.every = every
        self.last: dict[tuple[str, str], float] = {}
        self.held: collections.Counter[tuple[str, str]] = collections.Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self.last.get(key, -self.every) < self.every:
            self.held[key] += 1
            return False
        self.last[key] = now
        if held := self.held.pop(key, 0):
            record.msg = f"{record.msg} (and {held} more like it in the last {self.every:g} s)"
        return True


def quiet_repeats(package: str, every: float = 30.0) -> None:
    """A RepeatFilter on every logger of the package (filters on a logger do not reach its children)."""
    __import__(package)  # its modules create their loggers on import
    repeats = RepeatFilter(every)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == package or name.startswith(package + ".")) and isinstance(logger, logging.Logger):
            logger.addFilter(repeats)


def serve_metrics(port: int) -> None:
    start_http_server(port, addr="127.0.0.1")


# Label values are bounded: topics, reason kinds and partitions, never ids or free text.
EVENTS_IN = Counter("vigil_events_in_total", "Records consumed", ["component", "topic"])
EVENTS_OUT = Counter("vigil_events_out_total", "Events produced or stored", ["component", "topic"])
DEAD_LETTERS = Counter("vigil_dead_letters_total", "Records refused, by reason kind", ["topic", "reason_kind"])
DUPLICATES = Counter("vigil_duplicate_events_total", "Events skipped because their event_id was stored", ["topic"])
LATENCY = Histogram(
    "vigil_processing_latency_seconds",
    "From the record's Kafka timestamp to the end of its processing",
    ["component"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROCESSING_ERRORS = Counter(
    "vigil_processing_errors_total", "Records an agent failed on (logged with their position)", ["agent", "topic"]
)
DEPENDENCY_UP = Gauge(
    "vigil_dependency_up",
    "1 while a component reaches a dependency (postgres, kafka), 0 while it waits out an outage",
    ["component", "dependency"],
)
OUTAGE_RETRIES = Counter(
    "vigil_outage_retries_total", "Retries of work held up by an unreachable dependency", ["component", "dependency"]
)
CONSUMER_LAG = Gauge(
    "vigil_consumer_lag_records", "Records behind the partition's end", ["component", "topic", "partition"]
)
# Features per model are capped by the reference profile (vigil.drift_windows.profiles_of), and
# models and versions are the registry's, so these label sets stay bounded.
DRIFT_SCORE = Gauge(
    "vigil_drift_score", "Drift score of the last judged window", ["model_id", "model_version", "feature", "method"]
)
DRIFT_ACTIVE = Gauge(
    "vigil_drift_active", "1 while a DriftDetected stands for the feature", ["model_id", "model_version", "feature"]
)
MISSING_SHARE = Gauge(
    "vigil_feature_missing_share",
    "Share of the last judged window's events without a value for the feature (vigil.data_quality); "
    "features without a reference: at most 16 per window",
    ["model_id", "model_version", "feature"],
)
QUALITY_ACTIVE = Gauge(
    "vigil_data_quality_changed_active",
    "1 while a DataQualityChanged stands for the feature",
    ["model_id", "model_version", "feature"],
)
DRIFT_SKIPPED = Counter(
    "vigil_drift_values_skipped_total",
    "Values left out of drift windows: late events, text for a numeric feature, features without a reference, "
    "events read again after a crash",
    ["model_id", "reason"],
)
PERFORMANCE = Gauge(
    "vigil_performance_value",
    "Primary metric over the rolling window, for everyone and each single-attribute subgroup (values capped)",
    ["model_id", "model_version", "label", "metric", "subgroup"],
)
PERFORMANCE_ESTIMATED = Gauge(
    "vigil_performance_estimated",
    "ESTIMATED (CBPE, not realised) metric of the outputs awaiting their outcome in the performance window",
    ["model_id", "model_version", "label", "metric", "bound"],  # bound: estimate, low, high
)
JOIN_EXPIRED = Counter(
    "vigil_outcome_join_expired_total",
    "Sides of the outcome join that waited past the horizon: inferences never followed up, outcomes never matched",
    ["model_id", "side"],
)
OVERSIGHT = Gauge(
    "vigil_oversight_value",
    "Oversight over the rolling window: review coverage and override share (0-1), or counts of outputs "
    "acted on before review and of autonomous actions",
    ["model_id", "model_version", "kind"],
)
OVERSIGHT_ACTIVE = Gauge(
    "vigil_oversight_violation_active",
    "1 while an OversightViolation of the kind stands",
    ["model_id", "model_version", "kind"],
)
SOURCE_SILENCE = Gauge(
    "vigil_source_silence_seconds",
    "Seconds since the worker last received an inference of the model from the deployment",
    ["model_id", "deployment"],
)
SOURCE_SILENT = Gauge(
    "vigil_source_silent",
    "1 while the deployment has been silent for longer than its policy allows (SourceSilent)",
    ["model_id", "deployment"],
)
TRANSPARENCY = Gauge(
    "vigil_transparency_share",
    "Share of a version's outputs over the oversight window that carry it: the disclaimer (of patient-facing "
    "outputs), an explanation, a recorded consent, a score; only the kinds its policy judges",
    ["model_id", "model_version", "kind"],
)
TRANSPARENCY_ACTIVE = Gauge(
    "vigil_transparency_violation_active",
    "1 while a TransparencyViolation of the kind stands",
    ["model_id", "model_version", "kind"],
)
READER_FINDING = Gauge(
    "vigil_reader_finding_active",
    "1 while a ReaderFindingRaised of the kind stands for some label and subgroup of the version (vigil.readers)",
    ["model_id", "model_version", "kind"],
)
REVIEWS_UNMATCHED = Counter(
    "vigil_reviews_unmatched_total",
    "Reviews whose inference never came (patient-facing, already counted unreviewed, or never sent)",
    ["model_id"],
)
INCIDENTS = Gauge("vigil_incidents", "Incidents by model and status", ["model_id", "status"])
REPORTS_OVERDUE = Gauge("vigil_reports_overdue", "Open reporting clocks past their deadline", ["regime"])
REPORT_NEXT_DUE = Gauge(
    "vigil_report_next_due_seconds", "Seconds to the nearest open reporting deadline (negative: overdue)", ["regime"]
)
