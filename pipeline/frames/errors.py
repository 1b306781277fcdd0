"""Exceptions raised by frame extraction, each telling the operator what to do next."""

from __future__ import annotations

from pipeline.errors import CustodyError, UsageError


class ExtractionError(CustodyError):
    """Frames could not be extracted for a reason other than the input not being video."""


class NotVideoError(ExtractionError):
    """The exhibit has no decodable video stream (not a video, audio only, or unreadable container)."""


class BadParamsError(ExtractionError, UsageError):
    """The extraction parameters ask for nothing, or for something impossible."""

    exit_code = 2
