"""Encoding and writing stills off the decoding threads, in a bounded process-wide pool.

A decoder hands over the upright BGR pixels and goes on decoding; PNG compression (~10 ms at 1080p with
fpng, as long as decoding a keyframe; ~30 ms with libdeflate level 2) runs on every core even when memory allows
only one decoder (4K), and the decoders never wait for it unless `slots` stills are already in flight,
which bounds memory: each in-flight still holds its BGR frame, an RGB copy, the encoder's filtered rows and
its output buffer (fpng sizes it to the raw frame), up to about 4 frames' worth. Output never depends on
which thread encoded what.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.frames.executor import cores
from pipeline.frames.pixels import write_file
from pipeline.frames.png import encode_jpeg, encode_png, pixel_sha256

ENCODE_FRAMES = 4.0  # frames' worth of memory one in-flight encode holds at its peak (see above)
#: a PNG up to this size may be handed over in memory instead of written (see `write_still`)
IN_MEMORY_MAX = 8 << 20


@dataclass
class StillOut:
    pts: int
    stem: str
    width: int
    height: int
    rotation: int
    pixel_sha256: str
    png_sha256: str
    png: str
    thumb: str
    png_size: int = 0
    interlaced: bool = False  # two fields woven, as coded (the decoder's frame flag)
    data: bytes | None = None  # the PNG itself when handed over in memory (no file written); else None


def spill(still: StillOut, out_dir: Path) -> None:
    """Write a PNG that was kept in memory to its file and let go of the bytes (a still held back)."""
    if still.data is not None:
        write_file(out_dir / still.png, still.data)
        still.data = None


def encode_slots(width: int, height: int, memory_mb: float) -> int:
    """Stills encoded at once: one per core, as many as fit in `memory_mb` (at least one)."""
    per = ENCODE_FRAMES * width * height * 3 / 2**20
    if per <= 0:
        return cores()
    return max(1, min(cores(), int(memory_mb // per)))


class EncodePool:
    """Threads that encode and write stills; `submit` blocks while `slots` are busy (back-pressure).

    libdeflate, OpenCV, hashlib and the decoders release the GIL, so threads use every core; fpng holds it
    for its ~10 ms, during which the decoders (in libavcodec) go on.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="frames-encode")

    def submit(self, sem: threading.Semaphore, fn: Callable[[], StillOut]) -> Future[StillOut]:
        sem.acquire()
        try:
            fut = self._pool.submit(fn)
        except BaseException:
            sem.release()
            raise
        fut.add_done_callback(lambda _f: sem.release())
        return fut


_POOL: EncodePool | None = None
_POOL_LOCK = threading.Lock()


def encode_pool() -> EncodePool:
    """One pool per process (threads are made on demand and idle cheaply), shared by all decoders."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = EncodePool(cores())
        return _POOL


def write_still(img: np.ndarray, thumb: np.ndarray, pts: int, stem: str, rotation: int, out_dir: Path,
                png_level: int, png_encoder: str, in_memory: bool = False, interlaced: bool = False) -> StillOut:
    """Encode one upright still and its thumbnail, write both, and return what the record needs.

    `in_memory`: a PNG of up to IN_MEMORY_MAX bytes is not written but returned in `data`, for a caller
    that stores it straight away; writing it and reading it back cost ~5 ms of CPU a 1080p still (half of
    it hashing again what the encoder hashed), and an hour at 1 still/s wrote 8 GB of work files.
    """
    png = encode_png(img, png_level, png_encoder)
    data = png.tobytes() if in_memory and png.size <= IN_MEMORY_MAX else None
    if data is None:
        write_file(out_dir / f"{stem}.png", png.parts)
    write_file(out_dir / "thumbs" / f"{stem}.jpg", encode_jpeg(thumb))
    return StillOut(pts=pts, stem=stem, width=img.shape[1], height=img.shape[0], rotation=rotation,
                    pixel_sha256=pixel_sha256(img), png_sha256=png.sha256, png=f"{stem}.png",
                    thumb=f"thumbs/{stem}.jpg", png_size=png.size, interlaced=interlaced, data=data)

