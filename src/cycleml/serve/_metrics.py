"""Prometheus metrics of one app, and the ASGI middleware counting requests.

Each app has its own registry, so metrics are per process. With ``--workers N`` set
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder to add the workers' values up (prometheus_client's
multiprocess mode): ``/metrics`` then reads every worker's files."""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..store._background import WriterMetrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.008,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
)


class Metrics:
    """The service's metrics (names start with ``cycleml_``)."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cycleml_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "cycleml_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "cycleml_errors", "Error answers by error kind", ["route", "error"], registry=r
        )
        self.predictions = Counter(
            "cycleml_predictions", "Items scored", ["problem", "endpoint"], registry=r
        )
        self.model_version = Gauge(
            "cycleml_model_version",
            "The model version served per problem (its version number)",
            ["problem"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.model_reload_errors = Counter(
            "cycleml_model_reload_errors",
            "Failed loads of a new production model",
            ["problem"],
            registry=r,
        )
        self.log_queue = Gauge(
            "cycleml_log_queue_depth",
            "Prediction-log rows waiting to be written",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_written = Counter(
            "cycleml_log_rows_written", "Prediction-log rows written to the store", registry=r
        )
        self.log_failures = Counter(
            "cycleml_log_write_failures", "Failed prediction-log batch writes", registry=r
        )
        self.log_dropped = Counter(
            "cycleml_log_rows_dropped",
            "Prediction-log rows dropped: the store down and the buffer full, or a row it refused",
            registry=r,
        )
        self.log_writer = WriterMetrics(
            self.log_queue, self.log_written, self.log_failures, self.log_dropped
        )
        self.exposure_queue = Gauge(
            "cycleml_exposure_queue_depth",
            "Experiment exposures waiting to be written",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.exposures_written = Counter(
            "cycleml_exposures_written",
            "Experiment exposures written to the store (a unit already stored keeps its row)",
            registry=r,
        )
        self.exposure_failures = Counter(
            "cycleml_exposure_write_failures", "Failed exposure batch writes", registry=r
        )
        self.exposures_dropped = Counter(
            "cycleml_exposures_dropped",
            "Exposures dropped: the store was down and the buffer full, or it refused the row",
            registry=r,
        )
        self.exposure_writer = WriterMetrics(
            self.exposure_queue,
            self.exposures_written,
            self.exposure_failures,
            self.exposures_dropped,
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts every answer by route template, method and status and
    observes its latency. Unmatched paths count under the route ``other``."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "other"
            m = self.metrics
            m.requests.labels(path, scope["method"], str(status)).inc()
            m.latency.labels(path).observe(time.perf_counter() - started)
