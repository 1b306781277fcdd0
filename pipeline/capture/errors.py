"""Capture-specific exceptions, each a `pipeline.errors.CustodyError` so the CLI maps it to its exit code."""

from __future__ import annotations

from pipeline.errors import InfrastructureError, UsageError


class RecorderError(UsageError):
    """Bad recorder arguments (the message names the argument): exit 2."""


class SourceError(RecorderError):
    """A camera URL no registered source accepts, or one it rejects (the message says which and why)."""


class FfmpegNotFound(InfrastructureError):
    """ffmpeg is not on PATH; install it (Debian: apt-get install ffmpeg): exit 3."""
