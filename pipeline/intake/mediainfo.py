"""What a stored original is: footage, still or neither, and its metadata.

Field uploads include empty files, documents, recordings cut off when a
battery died (an MP4 with no `moov` atom) and stills with broken EXIF. None of
that may stop the bytes being kept: this module only *describes* an input with
a `status` and a human `message`; it never raises for bad media, and it reads
no more than the head of a file plus what ffprobe seeks to, so enormous files
cost no memory.

Statuses: `ok`, `empty`, `not_media`, `truncated`, `metadata_unreadable`.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

HEAD_BYTES = 1024 * 1024  # magic numbers and EXIF live in the first few KB; 1 MiB is generous
PROBE_TIMEOUT_S = 60

STATUSES = ("ok", "empty", "not_media", "truncated", "metadata_unreadable")


@dataclass
class MediaReport:
    """The classification of one input and the metadata that could be read."""

    status: str
    message: str
    kind: str  # video, image or other
    container: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- sniffing -----------------------------------------------------------
_VIDEO_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mp4/mov"),
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (0, b"FLV", "flv"),
    (0, b"\x00\x00\x01\xba", "mpeg-ps"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf/wmv"),
)
_IMAGE_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"GIF8", "gif"),
)


def sniff(head: bytes) -> tuple[str, str | None]:
    """Guess (kind, container) from magic numbers; names and extensions are not trusted."""
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"WEBP"):
        return ("video", "avi") if head[8:12] == b"AVI " else ("image", "webp")
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "image", head[8:12].decode()
    for off, magic, name in _IMAGE_MAGIC:
        if head[off:off + len(magic)] == magic:
            return "image", name
    for off, magic, name in _VIDEO_MAGIC:
        if head[off:off + len(magic)] == magic:
            return "video", name
    if len(head) >= 189 * 2 and head[0] == 0x47 and head[188] == 0x47:
        return "video", "mpeg-ts"
    es = _elementary_stream(head)
    if es:
        return "video", es
    return "other", None


def _elementary_stream(head: bytes) -> str | None:
    """A raw H.264 / H.265 Annex B stream (some cameras write these): a start code, then a parameter set or AUD."""
    for sc in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):
        if head.startswith(sc) and len(head) > len(sc) + 1:
            b0 = head[len(sc)]
            if b0 & 0x80:
                return None
            if b0 & 0x1F in (7, 9) and (b0 >> 1) & 0x3F not in (32, 33, 34, 35):  # H.264 SPS / AUD
                return "h264"
            if (b0 >> 1) & 0x3F in (32, 33, 34, 35):  # HEVC VPS / SPS / PPS / AUD
                return "hevc"
    return None


_CONTENT_TYPES = {
    "mp4/mov": "video/mp4", "mov": "video/quicktime", "matroska/webm": "video/x-matroska", "flv": "video/x-flv",
    "mpeg-ps": "video/mpeg", "asf/wmv": "video/x-ms-asf", "avi": "video/x-msvideo", "mpeg-ts": "video/mp2t",
    "h264": "video/h264", "hevc": "video/h265", "jpeg": "image/jpeg", "png": "image/png", "tiff": "image/tiff",
    "gif": "image/gif", "webp": "image/webp", "heic": "image/heic", "heix": "image/heic", "mif1": "image/heif",
    "avif": "image/avif",
    # ffprobe's format names, for reports that carry those
    "mpegts": "video/mp2t", "mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/x-matroska",
    "mpeg": "video/mpeg", "asf": "video/x-ms-asf",
}


def content_type_of(head: bytes) -> str:
    """The stored Content-Type, decided from the bytes (a name can say anything: `.ts` is not Qt Linguist)."""
    _kind, container = sniff(head)
    if container == "mp4/mov" and head[8:10] == b"qt":
        return "video/quicktime"
    return content_type_for(container)


def content_type_for(container: str | None) -> str:
    """The Content-Type of a sniffed container name (`sniff`'s second value)."""
    return _CONTENT_TYPES.get(container or "", "application/octet-stream")


# ---- tool versions --------------------------------------------------------
_versions: dict[str, str] = {}


def tool_versions() -> dict[str, str]:
    """Versions of ffprobe and exifread, recorded with every metadata event."""
    if not _versions:
        from importlib.metadata import version

        from pipeline.ops.toolversion import version_output

        exe = shutil.which("ffprobe")
        ver = "missing"
        if exe:
            try:
                out = version_output(exe)
                m = re.match(r"ffprobe version (\S+)", out)
                ver = m.group(1) if m else "unknown"
            except (OSError, subprocess.SubprocessError):
                ver = "unknown"
        _versions["ffprobe"] = ver
        for dist in ("exifread", "ffmpeg-python"):  # from the metadata: importing exifread costs ~20 ms
            try:
                _versions[dist] = version(dist)
            except Exception:  # noqa: BLE001 - version lookup is informative only
                _versions[dist] = "unknown"
    return dict(_versions)


# ---- ffprobe --------------------------------------------------------------
def _rate(value: str | None) -> str | None:
    """ffprobe gives rates as '30000/1001'; keep a decimal string (events hold no floats)."""
    if not value or value in ("0/0", "0"):
        return None
    try:
        return f"{float(Fraction(value)):.3f}"
    except (ValueError, ZeroDivisionError):
        return None


def _rotation(stream: dict[str, Any]) -> int:
    tags = stream.get("tags") or {}
    if "rotate" in tags:
        try:
            return int(tags["rotate"]) % 360
        except ValueError:
            pass
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            try:
                return int(float(sd["rotation"])) % 360
            except (TypeError, ValueError):
                pass
    return 0


def probe_footage(target: str) -> dict[str, Any]:
    """Run ffprobe (via ffmpeg-python) and keep the facts an examiner asks about."""
    import ffmpeg

    data = ffmpeg.probe(target, timeout=PROBE_TIMEOUT_S)
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    tags = {str(k).lower(): v for k, v in (fmt.get("tags") or {}).items()}
    vtags = {str(k).lower(): v for k, v in ((video or {}).get("tags") or {}).items()}
    out: dict[str, Any] = {
        "container": fmt.get("format_name"),
        "duration_seconds": fmt.get("duration"),
        "size": fmt.get("size"),
        "bit_rate": fmt.get("bit_rate"),
        "video_codec": (video or {}).get("codec_name"),
        "audio_codec": (audio or {}).get("codec_name"),
        "width": (video or {}).get("width"),
        "height": (video or {}).get("height"),
        "frame_rate": _rate((video or {}).get("avg_frame_rate")) or _rate((video or {}).get("r_frame_rate")),
        "rotation": _rotation(video) if video else 0,
        "creation_time": tags.get("creation_time") or vtags.get("creation_time"),
        "streams": len(streams),
    }
    return {k: v for k, v in out.items() if v is not None}


# ---- EXIF -----------------------------------------------------------------
def _ratio_to_float(v: Any) -> float:
    return float(v.num) / float(v.den) if getattr(v, "den", 1) else 0.0


def _gps(tags: dict[str, Any], which: str) -> str | None:
    val = tags.get(f"GPS GPS{which}")
    ref = str(tags.get(f"GPS GPS{which}Ref", "")).strip().upper()
    if val is None:
        return None
    try:
        d, m, s = (_ratio_to_float(x) for x in val.values[:3])
    except (ValueError, TypeError, ZeroDivisionError, AttributeError):
        return None
    deg = d + m / 60 + s / 3600
    if ref in ("S", "W"):
        deg = -deg
    return f"{deg:.7f}"


def read_exif(head: bytes, fileobj: BinaryIO | None = None) -> tuple[dict[str, Any], str | None]:
    """EXIF facts of a still, or (partial facts, problem) when the EXIF block is broken.

    `fileobj` (a local file) lets exifread follow offsets past the head, as TIFF-based RAW needs.
    """
    import exifread

    has_exif_block = b"Exif\x00\x00" in head[:65536] or head[:4] in (b"II*\x00", b"MM\x00*")
    try:
        src: BinaryIO = fileobj if fileobj is not None else io.BytesIO(head)
        src.seek(0)
        tags = exifread.process_file(src, details=False)
    except Exception as exc:  # noqa: BLE001 - exifread raises many types on corrupt input
        return {}, f"EXIF could not be parsed ({type(exc).__name__})"
    if not tags:
        return {}, ("EXIF block present but unreadable (corrupt offsets or entries)" if has_exif_block else None)

    def t(*names: str) -> str | None:
        for n in names:
            if n in tags:
                s = str(tags[n]).strip()
                if s:
                    return s
        return None

    out: dict[str, Any] = {
        "make": t("Image Make"),
        "model": t("Image Model"),
        "serial": t("EXIF BodySerialNumber", "MakerNote SerialNumber", "EXIF SerialNumber", "Image BodySerialNumber"),
        "capture_time": t("EXIF DateTimeOriginal", "Image DateTime", "EXIF DateTimeDigitized"),
        "gps_latitude": _gps(tags, "Latitude"),
        "gps_longitude": _gps(tags, "Longitude"),
        "width": t("EXIF ExifImageWidth", "Image ImageWidth"),
        "height": t("EXIF ExifImageLength", "Image ImageLength"),
        "orientation": t("Image Orientation"),
    }
    return {k: v for k, v in out.items() if v is not None}, None


# ---- classification -------------------------------------------------------
def _probe_error_text(exc: Exception) -> str:
    err = getattr(exc, "stderr", b"") or b""
    text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(" ")]
    for ln in lines:  # the specific diagnosis beats ffprobe's generic last line
        if "moov atom not found" in ln:
            return ln.split("] ", 1)[-1][:300]
    return lines[-1][:300] if lines else type(exc).__name__


def inspect_media(head: bytes, size: int, probe_target: str | Path | None,
                  fileobj: BinaryIO | None = None) -> MediaReport:
    """Classify an input from its first bytes and (for footage) an ffprobe of the whole.

    `probe_target` is a local path or an URL ffprobe can read (a presigned GET
    of the stored object); local paths are given as `file:` URLs so names such
    as `concat:...` or `-i` can't be taken as protocols or options.
    """
    tools = tool_versions()
    if size == 0:
        return MediaReport("empty", "zero-length file: stored as received, nothing to describe", "other", tools=tools)
    kind, container = sniff(head)
    if kind == "other":
        return MediaReport("not_media", "not a recognised video or image format (content sniffed, not the name)",
                           "other", tools=tools)
    if kind == "image":
        meta, problem = read_exif(head, fileobj)
        if problem:
            return MediaReport("metadata_unreadable", problem, kind, container, meta, tools)
        msg = "EXIF read" if meta else "image without EXIF metadata"
        return MediaReport("ok", msg, kind, container, meta, tools)
    if probe_target is None:
        return MediaReport("metadata_unreadable", "footage could not be probed (no readable copy)", kind, container,
                           tools=tools)
    target = probe_target if isinstance(probe_target, str) else f"file:{Path(probe_target).resolve()}"
    try:
        meta = probe_footage(target)
    except Exception as exc:  # noqa: BLE001 - ffmpeg.Error, timeouts, missing binary: all a status
        text = _probe_error_text(exc)
        low = text.lower()
        if "moov atom not found" in low or ("invalid data found" in low and container in ("mp4/mov", "mov")):
            return MediaReport("truncated", f"recording is incomplete ({text}); typically the camera stopped "
                                            "before finalising the file — bytes kept as received; `custody "
                                            "recover` can rebuild a playable working copy", kind, container,
                               tools=tools)
        if "end of file" in low or "partial file" in low:
            return MediaReport("truncated", f"recording is incomplete ({text})", kind, container, tools=tools)
        return MediaReport("metadata_unreadable", f"ffprobe could not read the footage ({text})", kind, container,
                           tools=tools)
    if not meta.get("video_codec") and not meta.get("audio_codec"):
        return MediaReport("metadata_unreadable", "container has no decodable streams", kind,
                           meta.get("container"), meta, tools)
    return MediaReport("ok", "footage probed", kind, meta.get("container") or container, meta, tools)


def inspect_file(path: Path) -> MediaReport:
    """Classify a local file; never raises for bad content."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        return inspect_media(head, size, path, f)


def metadata_document(report: MediaReport, source: dict[str, Any]) -> bytes:
    """The derived metadata object: what was read, by which tools, from which original."""
    doc = {"schema": "custody.metadata/1", "source": source, **report.as_dict()}
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1, default=str).encode()
