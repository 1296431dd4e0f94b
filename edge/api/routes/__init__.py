"""The local API's routes, one module per resource (JSON under /api, plus /healthz and /metrics)."""
