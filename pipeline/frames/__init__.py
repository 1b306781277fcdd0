"""Frame extraction core: reproducible, hashed stills from video exhibits.

Public API for flows: `extract_frames`, `ExtractParams`, `ExtractionResult`, `Still`, `tool_versions`,
`engine_params`, and the exceptions `NotVideoError`, `ExtractionError`, `BadParamsError`.
"""

from pipeline.frames.errors import BadParamsError, ExtractionError, NotVideoError
from pipeline.frames.extract import engine_params, extract_frames, tool_versions
from pipeline.frames.models import ExtractionResult, ExtractParams, Still
from pipeline.frames.probe import VideoInfo, probe

__all__ = ["extract_frames", "tool_versions", "engine_params", "ExtractParams", "ExtractionResult", "Still",
           "NotVideoError", "ExtractionError", "BadParamsError", "probe", "VideoInfo"]
