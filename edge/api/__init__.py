"""The edge's local HTTP API and operator pages, one FastAPI app: `create_app(agent)` (edge/api/app.py)."""

from edge.api.app import create_app

__all__ = ["create_app"]
