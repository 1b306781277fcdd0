"""The `custody` command line."""

from pipeline.cli.main import app, main

__all__ = ["app", "main"]
