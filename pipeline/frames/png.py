"""Deterministic still encoding and hashing.

PNG bytes must be identical on every run and on every machine with the same tool versions, so every knob
is pinned and both encoders are deterministic: RGB 8-bit, no interlace, the UP filter on every row.

`fpng` (the default, Rich Geldreich's fpng through the `fpng` wheel): one pass of pixel run-length matches
and dynamic Huffman codes, ~10 ms for a 1080p still against ~30 ms for libdeflate level 2, and as small on
camera footage (measured against ffmpeg's default PNG of the same pixels: 0.82 noisy mandelbrot, 0.94
testsrc2 + noise, 1.00 clean testsrc2 720p and 720p MJPEG). Its only weakness is long repeats (flat
synthetic pictures: 1.65x on SMPTE bars at 4K), so when its output is under FLAT_RATIO of the raw pixels
libdeflate is tried too and the smaller kept (a rule on the bytes alone, so still deterministic). fpng's
SIMD code paths (the UP filter, CRC-32, Adler-32) compute exact integer results, so its bytes do not depend
on the CPU. It writes one IDAT chunk and its own private `fdEC` marker chunk. It holds the GIL while it
runs, which the encode pool allows for (decoders release it).

`libdeflate`: our own container: the UP filter vectorised in numpy, one zlib stream from libdeflate at
`level`, split into fixed-size IDAT chunks, no ancillary chunks. Level 0 (stored) is always libdeflate.

Why libdeflate: its compressor has no CPU-dependent code paths (SIMD only in checksums, which are exact),
so its output depends on (version, level, input) alone; ISA-L (faster still) dispatches to different match
finders per CPU generation and so gives different bytes on different machines. Measured on 1080p frames
(one thread): UP + libdeflate level 2 ~27 ms (level 1 ~22 ms), against ~80 ms for ffmpeg's default PNG
(zlib level 6, no filter) and ~80-120 ms for OpenCV level 1 + UP; bytes relative to ffmpeg's for the same
pixels at level 2: 0.78 (noisy mandelbrot, the issue's footage), 1.02-1.07 (testsrc2 + noise, 720p/1080p,
the synthetic worst case), 1.08 (720p MJPEG); level 1 reached 1.10 there, hence level 2. The former
default (OpenCV level 0, stored) took ~11 ms but 3.0-3.2x the bytes.
PNG stays lossless whatever the encoder and level.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from functools import cache

import cv2
import deflate
import fpng.fpng_ext as fpng_ext
import numpy as np

from pipeline.frames.errors import ExtractionError
from pipeline.frames.models import DEFAULT_PNG_ENCODER, DEFAULT_PNG_LEVEL

THUMB_JPEG_QUALITY = 85
IDAT_CHUNK = 1 << 20  # bytes of compressed data per IDAT chunk (the last one holds the rest)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILTER_UP = 2
# libdeflate version inside each `deflate` release (the wheel links it statically), for the record
_BUNDLED_LIBDEFLATE = {"0.9.0": "1.25", "0.8.1": "1.24", "0.8.0": "1.23"}
# fpng output smaller than this fraction of the raw pixels: a flat picture, where libdeflate's long matches
# win (up to 5x smaller on SMPTE bars); both are made and the smaller kept
FLAT_RATIO = 0.03


@cache
def encoder_versions() -> dict[str, str]:
    from importlib.metadata import version

    binding = str(deflate.__version__)
    return {"deflate": binding, "libdeflate": _BUNDLED_LIBDEFLATE.get(binding, f"bundled with deflate {binding}"),
            "fpng": version("fpng")}


def png_settings(level: int, encoder: str = DEFAULT_PNG_ENCODER) -> dict[str, object]:
    """Everything that decides a still's PNG bytes besides the pixels (recorded with every extraction)."""
    v = encoder_versions()
    deflate_part = {"deflate": f"libdeflate {v['libdeflate']} (python deflate {v['deflate']}), zlib container",
                    "level": int(level), "idat_chunk": IDAT_CHUNK, "ancillary_chunks": "none"}
    common = {"library": "custody.frames.png", "filter": "up, every row (fpng: the first row unfiltered)",
              "color": "rgb, 8 bit, no alpha, no interlace (grey images: libdeflate, 8 bit grey)"}
    if encoder == "libdeflate" or level == 0:
        return {**common, "encoder": "libdeflate", **deflate_part}
    return {**common, "encoder": "fpng", "fpng": f"fpng (python fpng {v['fpng']}), default flags, one IDAT, "
            "its fdEC marker chunk", "flat_rule": f"fpng bytes < {FLAT_RATIO} x raw pixel bytes: libdeflate "
            "also made and the smaller kept (libdeflate on a tie)", "libdeflate": deflate_part}


@dataclass
class Png:
    """An encoded PNG as the pieces to write (no copy into one buffer), with its digest and size."""

    parts: list[bytes | memoryview] = field(default_factory=list)
    sha256: str = ""
    size: int = 0

    def tobytes(self) -> bytes:
        return b"".join(self.parts)


def _chunk(kind: bytes, data: bytes | memoryview) -> list[bytes | memoryview]:
    crc = deflate.crc32(data, deflate.crc32(kind))  # libdeflate's PCLMUL CRC: ~15x zlib's
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", crc)]


def up_filtered(img: np.ndarray) -> np.ndarray:
    """PNG scanlines of a BGR (or grey) image, each row filtered with UP: filter byte 2, then RGB(row) - RGB(row
    above) modulo 256 (the first row's 'above' is zero)."""
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img
    h = rgb.shape[0]
    rows = rgb.reshape(h, -1)
    out = np.empty((h, rows.shape[1] + 1), np.uint8)
    out[:, 0] = FILTER_UP
    out[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out


def encode_png(img: np.ndarray, level: int = DEFAULT_PNG_LEVEL, encoder: str = DEFAULT_PNG_ENCODER) -> Png:
    """A BGR uint8 image (or a 2-D grey one) as PNG pieces, hashed (see the module docstring for the choice)."""
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ExtractionError(f"cannot encode a {img.dtype} image of shape {img.shape} as PNG")
    if encoder not in ("fpng", "libdeflate"):
        raise ExtractionError(f"unknown PNG encoder {encoder!r}: use fpng or libdeflate")
    if encoder == "libdeflate" or level == 0 or img.ndim == 2:
        return _deflate_png(img, level)
    try:
        data = fpng_ext.encode_ndarray(np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ExtractionError(f"fpng failed to encode a {img.shape} image: {exc}") from None
    if not data:
        raise ExtractionError(f"fpng failed to encode a {img.shape} image")
    fast = Png([data], hashlib.sha256(data).hexdigest(), len(data))
    if fast.size >= FLAT_RATIO * img.size:
        return fast
    flat = _deflate_png(img, level)
    return flat if flat.size <= fast.size else fast


def _deflate_png(img: np.ndarray, level: int) -> Png:
    h, w = img.shape[:2]
    try:
        z = memoryview(deflate.zlib_compress(up_filtered(img), int(level)))
    except (ValueError, deflate.DeflateError) as exc:
        raise ExtractionError(f"PNG compression failed: {exc}") from None
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if img.ndim == 3 else 0, 0, 0, 0)
    parts: list[bytes | memoryview] = [PNG_SIGNATURE, *_chunk(b"IHDR", ihdr)]
    for off in range(0, max(len(z), 1), IDAT_CHUNK):
        parts += _chunk(b"IDAT", z[off:off + IDAT_CHUNK])
    parts += _chunk(b"IEND", b"")
    digest = hashlib.sha256()
    for p in parts:
        digest.update(p)
    return Png(parts, digest.hexdigest(), sum(len(p) for p in parts))


def pixel_sha256(img: np.ndarray) -> str:
    """SHA-256 over a shape/format header plus the raw pixels, so a reshaped buffer cannot collide."""
    img = np.ascontiguousarray(img)
    h = hashlib.sha256(f"{img.shape[0]}x{img.shape[1]}x{img.shape[2] if img.ndim == 3 else 1}:bgr24\n".encode())
    h.update(memoryview(img).cast("B"))
    return h.hexdigest()


def thumb_size(upright_w: int, upright_h: int, width: int) -> tuple[int, int]:
    """(w, h) of an upright thumbnail `width` wide (never upscaled), keeping the aspect ratio."""
    tw = min(width, upright_w)
    return tw, max(1, round(upright_h * tw / upright_w))


def encode_jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, THUMB_JPEG_QUALITY, cv2.IMWRITE_JPEG_OPTIMIZE, 0])
    if not ok:
        raise ExtractionError("OpenCV failed to encode a JPEG thumbnail")
    return buf.tobytes()


def rotate_upright(img: np.ndarray, rotation_cw: int) -> np.ndarray:
    if rotation_cw == 90:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if rotation_cw == 180:
        return cv2.rotate(img, cv2.ROTATE_180)
    if rotation_cw == 270:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img
