"""The HTTP API (FastAPI): `custody serve` runs it; `create_app` builds it."""

from pipeline.api.app import create_app

__all__ = ["create_app"]
