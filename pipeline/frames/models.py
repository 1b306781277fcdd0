"""Parameter and result models: what the custody event records about an extraction."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_PNG_LEVEL = 2  # libdeflate level (pipeline.frames.png; its docstring says why)
DEFAULT_PNG_ENCODER = "fpng"  # fpng, with libdeflate for flat pictures; or "libdeflate" alone
PngEncoder = Literal["fpng", "libdeflate"]
MAX_TIMESTAMPS = 10_000  # chosen times in one request: each is recorded in the custody event that asks for them


def sanitise_prefix(label: str) -> str:
    """Exhibit labels end up in file names; keep them to [A-Za-z0-9_-] so names are portable and unambiguous."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")
    return cleaned or "frame"


class Selection(BaseModel):
    """Which frames to take: the fields the mode registry (`modes.py`) switches on.

    Shared by `ExtractParams`, the CLI and the API's frame requests, so every interface speaks one
    vocabulary. Modes combine; a frame picked by several modes is written once with all reasons.
    Times (`every_seconds`, `timestamps`) are media time in seconds from the first frame's presentation time,
    not container pts, so that 0.0 is always the first picture whatever the container's start offset.
    """

    # infinities and NaN are no times (an infinite interval crashed the planner after the request was accepted)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    every_seconds: float | None = Field(default=None, gt=0)
    keyframes: bool = False
    # keyframe mode: at least this many seconds between stills; None = 1 s on all-intra footage (MJPEG,
    # where every frame is a keyframe), none otherwise; 0 = every keyframe
    keyframe_min_interval: float | None = Field(default=None, ge=0)
    scenes: bool = False
    scene_threshold: float = Field(default=30.0, gt=0, le=255)
    timestamps: tuple[float, ...] = Field(default=(), max_length=MAX_TIMESTAMPS)

    @field_validator("timestamps", mode="before")
    @classmethod
    def _sorted_unique(cls, v: object) -> object:
        if isinstance(v, list | tuple):
            return tuple(sorted({float(x) for x in v}))
        return v

    def wants_anything(self) -> bool:
        from pipeline.frames.modes import active

        return bool(active(self))


class ExtractParams(Selection):
    """Which stills to take and how to write them; what the custody event records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name_prefix: str = "frame"
    png_compression: int = Field(default=DEFAULT_PNG_LEVEL, ge=0, le=12,
                                 description="libdeflate level (0: stored, whatever the encoder)")
    png_encoder: PngEncoder = Field(default=DEFAULT_PNG_ENCODER,
                                    description="fpng (libdeflate for flat pictures) or libdeflate alone")
    thumb_width: int = Field(default=160, ge=16, le=1024)
    contact_sheet_columns: int = Field(default=8, ge=1, le=32)
    contact_sheet_rows: int = Field(default=10, ge=1, le=64)

    @field_validator("name_prefix")
    @classmethod
    def _clean_prefix(cls, v: str) -> str:
        return sanitise_prefix(v)


class Still(BaseModel):
    """One extracted still and everything needed to re-derive and verify it."""

    index: int = Field(description="frame number in presentation order among readable frames (0-based)")
    pts: int = Field(description="raw container presentation timestamp")
    time_base: str = Field(description="container time base as 'num/den'; pts_time = pts * time_base")
    pts_time: float = Field(description="pts * time_base, seconds on the container clock")
    offset: float = Field(description="seconds since the first frame's presentation time")
    reasons: list[str]
    requested_times: list[float] = Field(default_factory=list, description="interval/timestamp times served by it")
    width: int
    height: int
    rotation: int = Field(description="clockwise degrees applied to make the still upright")
    pixel_sha256: str = Field(description="SHA-256 of 'HxWx3:bgr24\\n' + upright BGR pixel bytes")
    png: str = Field(description="PNG file name inside out_dir")
    png_sha256: str
    png_size: int = 0
    thumb: str
    wallclock: datetime | None = None
    decoder_concealed: bool = Field(default=False, description="the decoder flagged this frame, or one it is "
                                    "predicted from since the keyframe, corrupt: it concealed errors in damaged "
                                    "data, so not every pixel is from the recording")
    interlaced: bool = Field(default=False, description="the decoder says the frame is interlaced: two fields "
                             "recorded half a frame apart, woven as coded (not deinterlaced), so moving edges "
                             "show combing")
    bitstream_damaged: bool = Field(default=False, description="decoded from coded data that breaks the codec's "
                                    "syntax (this frame's or an earlier one's since the keyframe): zeroed or cut "
                                    "bytes the decoder may take silently, so the picture is not what was recorded")


class ExtractionResult(BaseModel):
    source: str
    out_dir: str
    stills: list[Still]
    contact_sheets: list[str]
    frames_in_index: int = Field(description="frames the container claims to hold")
    frames_readable: int = Field(description="frames whose packets could be read")
    duration: float
    complete: bool = Field(description="False when the file is truncated or some wanted frames did not decode")
    decode_stopped_at: float | None = Field(default=None, description="offset (s) of the last frame that decoded")
    warnings: list[str] = Field(default_factory=list)
    params: dict
    tool_versions: dict[str, str]
    probe: dict = Field(default_factory=dict, description="codec, container, size, fps, rotation, time base")
    chunks: int = 0
