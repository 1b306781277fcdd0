"""What content credentials add to one still: time and bytes, beside the cost of writing the still itself.

`manifest_cost()` is the measurement `bench/frames.py` reports; the ratio to the PNG encode of the same
frame, taken in the same run, is the figure to compare across machines (absolute times are noisy).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.provenance.c2pa_manifest import ACTIONS, Embedder, SourceRef, validate
from pipeline.provenance.credentials import Credentials, ensure_local_ca

_SOURCE = SourceRef(case_id="case-" + "0" * 32, case="BENCH/1", exhibit_id="exh-" + "0" * 32, exhibit="B/1",
                    bucket="custody-originals", key=f"case-{'0' * 32}/exh-{'0' * 32}/{'0' * 32}", version_id="v1",
                    sha256="0" * 64, size=1 << 30, event_seq=2, original_name="CAM-1.mp4", content_type="video/mp4")


def _frame(width: int, height: int) -> np.ndarray:
    """A camera-like BGR frame (gradient + noise); PNG level 0 stores pixels, so content hardly matters."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    img = ramp + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _median_ms(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def manifest_cost(work: Path, *, width: int = 1920, height: int = 1080, repeats: int = 10,
                  credentials: Credentials | None = None) -> dict[str, Any]:
    """Median ms to encode a still (PNG level 0, as stills are written) and to add a signed manifest to it,
    in memory and file to file; bytes the manifest adds; ms to validate it."""
    from pipeline.frames.png import encode_png, pixel_sha256

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    creds = credentials or ensure_local_ca(work / "c2pa")
    img = _frame(width, height)
    png = encode_png(img, 0).tobytes()
    embedder = Embedder(creds)
    params = {"every_seconds": 1.0, "png_compression": 0}
    kw = {"pixel_sha256": pixel_sha256(img), "procedure": "frames_extracted", "run_id": "bench"}
    embedder.embed_bytes(png, _SOURCE, ACTIONS["still"], params, **kw)  # warm-up: library load, first signature
    src = work / "still.png"
    src.write_bytes(png)
    signed, info = embedder.embed_bytes(png, _SOURCE, ACTIONS["still"], params, **kw)
    (work / "signed.png").write_bytes(signed)
    encode_ms = _median_ms(lambda: encode_png(img, 0), repeats)
    embed_ms = _median_ms(lambda: embedder.embed_bytes(png, _SOURCE, ACTIONS["still"], params, **kw), repeats)
    file_ms = _median_ms(lambda: embedder.embed(src, work / "out.png", _SOURCE, ACTIONS["still"], params, **kw),
                         repeats)
    validate_ms = _median_ms(lambda: validate(signed, creds.trust_anchors_pem), max(3, repeats // 2))
    return {"still": f"{width}x{height} PNG level 0", "png_bytes": len(png), "manifest_added_bytes": info.added_bytes,
            "manifest_added_pct": round(100 * info.added_bytes / len(png), 3), "png_encode_ms": encode_ms,
            "manifest_embed_ms": embed_ms, "manifest_embed_file_ms": file_ms, "manifest_validate_ms": validate_ms,
            "embed_over_encode": round(embed_ms / encode_ms, 2) if encode_ms else None}
