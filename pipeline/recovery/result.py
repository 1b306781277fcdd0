"""What a recovery did, in a form a custody event can carry and an examiner can repeat."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import av

STATUSES = ("recovered", "partial", "impossible")
RECOVERY_VERSION = "1"  # bump when the walker's acceptance rules change: results may differ between versions

NO_CONFIG = ("no reference file and no in-band SPS/PPS: supply --reference, a healthy file from the same camera "
             "(same model and recording settings)")


def tool_versions() -> dict[str, str]:
    libs = {name: ".".join(str(x) for x in v) for name, v in av.library_versions.items()
            if name in ("libavcodec", "libavformat", "libavutil")}
    return {"recovery": RECOVERY_VERSION, "pyav": av.__version__, **libs}


@dataclass
class Ranges:
    """Byte ranges [start, end) of the damaged file, adjacent ones merged so the list stays short."""

    items: list[list[int]] = field(default_factory=list)

    def add(self, start: int, end: int) -> None:
        if self.items and self.items[-1][1] == start:
            self.items[-1][1] = end
        else:
            self.items.append([start, end])

    @property
    def total(self) -> int:
        return sum(e - s for s, e in self.items)


@dataclass
class SkippedRange:
    start: int
    end: int
    reason: str
    estimated_frames_lost: int = 0


@dataclass
class RecoveryResult:
    status: str
    message: str
    codec: str | None = None
    method: str | None = None  # 'reference:<sha256>' | 'in-band'
    frames: int = 0
    frames_decoded: int = 0  # from the verification decode (0 when not run)
    keyframes: int = 0
    audio_frames: int = 0
    duration_s: float = 0.0  # recovered frames x frame duration
    timeline_s: float = 0.0  # last frame's end on the output's timeline (includes estimated gaps)
    bytes_used: Ranges = field(default_factory=Ranges)
    bytes_skipped: list[SkippedRange] = field(default_factory=list)
    unreliable_frames: list[list[int]] = field(default_factory=list)  # [first, last] recovered frame indices
    segments: list[dict] = field(default_factory=list)  # runs of frames without a timeline jump: where each starts
    b_frames: bool = False
    reference: dict | None = None
    damaged: dict = field(default_factory=dict)  # name, size, mdat ranges, boxes found
    video: dict | None = None
    audio: dict | None = None
    output: dict | None = None  # name, size, sha256
    warnings: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    tools: dict = field(default_factory=tool_versions)
    elapsed_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown recovery status {self.status!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["bytes_used"] = self.bytes_used.items
        d["bytes_used_total"] = self.bytes_used.total
        d["bytes_skipped_total"] = sum(s.end - s.start for s in self.bytes_skipped)
        return d
