"""Frame extraction core: reproducible, hashed stills from video exhibits.

Public API for flows: `extract_frames`, `ExtractParams`, `ExtractionResult`, `Still`, `tool_versions`,
`engine_params`, and the exceptions `NotVideoError`, `ExtractionError`, `BadParamsError`.
Names resolve lazily, so importing `pipeline.frames.modes` (the mode registry the CLI and API read)
does not load OpenCV or libav.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# numpy's OpenBLAS starts a thread per core that spins at start-up; extraction does no linear algebra and
# parallelises itself, so one BLAS thread is enough (only effective before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_NAMES = {
    "BadParamsError": "pipeline.frames.errors", "ExtractionError": "pipeline.frames.errors",
    "NotVideoError": "pipeline.frames.errors", "engine_params": "pipeline.frames.extract",
    "extract_frames": "pipeline.frames.extract", "tool_versions": "pipeline.frames.extract",
    "ExtractionResult": "pipeline.frames.models", "ExtractParams": "pipeline.frames.models",
    "Still": "pipeline.frames.models", "VideoInfo": "pipeline.frames.probe", "probe": "pipeline.frames.probe",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.frames' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
