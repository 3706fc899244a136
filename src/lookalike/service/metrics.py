"""Prometheus metrics, in a registry of the app's own (two apps in one process stay apart)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 64, 128, 256)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lookalike_http_requests",
            "HTTP requests by route template, method and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "lookalike_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "lookalike_inference_batch_size",
            "Images per forward pass (micro-batching).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "lookalike_inference_duration_seconds",
            "Time of one forward pass plus index search.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.verdicts = Counter(
            "lookalike_verdicts",
            "Verdicts given, by label.",
            ("label",),
            registry=self.registry,
        )
        self.catalogue_items = Gauge(
            "lookalike_catalogue_items", "Items in the catalogue index.", registry=self.registry
        )
        self.queue_depth = Gauge(
            "lookalike_inference_queue_depth",
            "Images waiting for a forward pass.",
            registry=self.registry,
        )

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)

    def track(self, catalogue_items: Callable[[], int], queue_depth: Callable[[], int]) -> None:
        """Gauges read at scrape time, so they are never stale."""
        self.catalogue_items.set_function(lambda: float(catalogue_items()))
        self.queue_depth.set_function(lambda: float(queue_depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
