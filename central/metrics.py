"""Prometheus metrics of the central platform (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "bondgate_central_http_requests", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "bondgate_central_http_request_seconds", "HTTP request latency", ["method", "route"], registry=REGISTRY
)
DOCUMENTS = Counter(
    "bondgate_central_documents",
    "Documents taken in, by kind and result",
    ["kind", "result"],
    registry=REGISTRY,
)
EVENTS = Counter("bondgate_central_edge_events", "Edge events, by result", ["result"], registry=REGISTRY)
FEED_RECORDS = Counter(
    "bondgate_central_feed_records_served", "Feed records served to edges", registry=REGISTRY
)
