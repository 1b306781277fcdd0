"""The `custody` command line."""

from pipeline.cli.main import build_app, main, run

__all__ = ["build_app", "main", "run"]
