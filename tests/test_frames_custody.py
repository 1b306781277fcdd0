"""Extraction as a custody procedure on the real embedded stack: stills stored while extracting, each
exactly once, the event listing all of them, unique names across the files of an exhibit, a failed store
recorded as such; plus the PNG encoder's reproducibility and what a light command imports."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.custody.actor import Actor
from pipeline.errors import StorageError
from pipeline.frames import ExtractionError, ExtractParams, extract_frames
from pipeline.frames.derive import extract_object, footage_objects
from pipeline.frames.png import encode_png, encoder_versions, pixel_sha256
from pipeline.intake.originals import Offer
from pipeline.intake.upload import store_original
from pipeline.provenance.c2pa_manifest import read as c2pa_read
from pipeline.provenance.c2pa_manifest import unsigned_png_sha256
from tests import footage

pytestmark = pytest.mark.timeout(240)
NAME_OK = r"^[A-Za-z0-9_.-]+$"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("custody-footage")
    return {"a": footage.h264(d / "a.mp4", 3), "b": footage.h264(d / "b.ts", 2, bframes=False),
            "mjpeg": footage.mjpeg_avi(d / "m.avi", 3, fps=15)}


def _exhibit(evidence, ref: str):  # type: ignore[no-untyped-def]
    actor = Actor("pytest", "officer")
    return evidence.ensure_exhibit(f"OP-FR/{uuid.uuid4().hex[:8]}", ref, "DC Test", actor)


def _ingest(evidence, case, ex, path: Path, **params):  # type: ignore[no-untyped-def]
    return store_original(evidence, case, ex, path, Offer(path.name, {"source": "test", **params}),
                          actor=Actor("pytest", "officer"))


def test_stills_stored_once_each_and_the_event_lists_them_all(evidence, clips: dict[str, Path]) -> None:
    case, ex = _exhibit(evidence, "JB/1")
    _ingest(evidence, case, ex, clips["a"])
    _ingest(evidence, case, ex, clips["b"], wallclock_start="2026-03-04T05:06:07.250Z")
    objs, events = footage_objects(evidence, ex)
    assert len(objs) == 2
    seen: list[int] = []
    stills: list[dict] = []
    for o in objs:
        event = extract_object(evidence, case, ex, o, ExtractParams(every_seconds=0.5, name_prefix=ex.ref),
                               actor=Actor("pytest", "examiner"), events=events,
                               progress=lambda done, total: seen.append(done))
        assert event["action"] == "frames_extracted"
        derived = [x for x in event["objects"] if x["role"] == "derived"]
        kinds = [x["kind"] for x in derived]
        assert kinds.count("still") == kinds.count("thumbnail") == event["details"]["stills"] >= 4
        assert kinds.count("frames_manifest") == 1 and kinds.count("contact_sheet") >= 1
        keys = [x["key"] for x in derived]
        assert len(set(keys)) == len(keys)  # one object per file, never stored twice
        for x in derived:
            st = evidence.store.stat(x["bucket"], x["key"], x["version_id"])
            assert st is not None and st.size == x["size"] and st.sha256 == x["sha256"]
        for x in (x for x in derived if x["kind"] == "still"):
            # the stored still is the encoder's PNG plus its content credential (one caBX chunk)
            c2pa = x["info"]["c2pa"]
            assert c2pa["unsigned_sha256"] == x["info"]["png_sha256"]
            assert x["size"] == x["info"]["png_size"] + c2pa["added_bytes"]
            data = evidence.store.get_bytes(x["bucket"], x["key"], x["version_id"])
            assert unsigned_png_sha256(data) == x["info"]["png_sha256"]
            assert c2pa_read(data)["source"]["exhibit_id"] == ex.id
        stills += [x for x in derived if x["kind"] == "still"]
    # nothing was stored for the exhibit that its events do not list
    recorded = {x["key"] for e in evidence.log.events(ex.id) for x in e.get("objects", []) if x["role"] == "derived"}
    stored = set(evidence.store.list_keys(evidence.store.buckets["derived"], f"{ex.case_id}/{ex.id}/"))
    assert stored == recorded
    assert seen and seen[-1] > 0
    names = [s["original_name"] for s in stills]
    assert len(set(names)) == len(names), "still names must be unique across the files of an exhibit"
    assert all(__import__("re").match(NAME_OK, n) for n in names)
    by_src = {o.sha256[:8]: o for o in objs}
    assert {n.split("_")[2] for n in names} == set(by_src)  # JB_1_<sha8>_...
    walled = [n for n in names if "20260304T050607" in n]
    assert walled and walled[0].startswith(f"JB_1_{objs[1].sha256[:8]}_20260304T050607.250Z_t")


def test_a_failed_store_records_no_extraction(evidence, clips: dict[str, Path]) -> None:
    from pipeline.evidence import Evidence

    case, ex = _exhibit(evidence, "JB/2")
    _ingest(evidence, case, ex, clips["a"])
    broken = Evidence(evidence.settings)
    broken.store.buckets = {**broken.store.buckets, "derived": f"custody-missing-{uuid.uuid4().hex[:8]}"}
    objs, events = footage_objects(broken, ex)
    with pytest.raises(StorageError):
        extract_object(broken, case, ex, objs[0], ExtractParams(every_seconds=0.5), actor=Actor("pytest", "x"),
                       events=events)
    actions = [e["action"] for e in evidence.log.events(ex.id)]
    assert "frames_extracted" not in actions
    failed = [e for e in evidence.log.events(ex.id) if e["action"] == "frames_not_extracted"]
    assert failed and "storing the derived files failed" in failed[-1]["details"]["reason"]
    assert failed[-1]["details"]["stored_before_failure"] == []


def test_png_bytes_reproducible_and_lossless(clips: dict[str, Path], tmp_path: Path) -> None:
    params = ExtractParams(every_seconds=0.4)
    runs = [extract_frames(clips["a"], tmp_path / f"r{i}", params, workers=w, processes=p)
            for i, (w, p) in enumerate(((1, False), (2, False), (2, True), (1, False)))]
    for r in runs[1:]:
        assert [s.model_dump() for s in r.stills] == [s.model_dump() for s in runs[0].stills]
    for s in runs[0].stills:
        data = (tmp_path / "r0" / s.png).read_bytes()
        assert all((tmp_path / f"r{i}" / s.png).read_bytes() == data for i in (1, 2, 3))
        assert hashlib.sha256(data).hexdigest() == s.png_sha256 and len(data) == s.png_size
        # an independent decoder (Pillow's, not OpenCV's) gets back exactly the recorded pixels
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert pixel_sha256(np.ascontiguousarray(rgb[:, :, ::-1])) == s.pixel_sha256


@pytest.mark.parametrize("encoder", ["fpng", "libdeflate"])
def test_png_encoder_is_pinned(encoder: str) -> None:
    """Same pixels, level and tool versions give the same bytes, in any thread; a change of encoder
    bytes must come with a new ENGINE_VERSION (update the digests below then)."""
    rng = np.random.default_rng(7)
    img = np.clip(np.cumsum(rng.integers(-3, 4, (120, 160, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    with ThreadPoolExecutor(4) as pool:
        digests = {p.sha256 for p in pool.map(lambda _: encode_png(img, 1, encoder), range(8))}
    assert len(digests) == 1
    png = encode_png(img, 1, encoder)
    assert hashlib.sha256(png.tobytes()).hexdigest() == png.sha256
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.tobytes())))[:, :, ::-1], img)
    versions = encoder_versions()
    if (versions["libdeflate"], versions["fpng"]) == ("1.25", "0.1.0"):
        assert png.sha256 == GOLDEN_PNG_SHA256[encoder], png.sha256


GOLDEN_PNG_SHA256 = {"libdeflate": "898b466cc6eb716bc1ed28de88d50ec2942f52390bd2b3660d8baac0e44bc5b1",  # level 1
                     "fpng": "3be2a70beb07790f3b56f17e25bf435b104d80f7647385a7f0e6ea41890c3ecd"}  # fpng 0.1.0


def test_flat_pictures_get_the_smaller_of_fpng_and_libdeflate() -> None:
    """fpng has no long matches: on a flat picture libdeflate is made too and kept when smaller; on a noisy
    one fpng alone is used (its bytes carry fpng's marker chunk). Lossless either way."""
    bars = np.zeros((360, 640, 3), np.uint8)
    for i, colour in enumerate([(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0)]):
        bars[:, i * 160:(i + 1) * 160] = colour
    noisy = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for img, want in ((bars, "libdeflate"), (noisy, "fpng")):
        png = encode_png(img, 2, "fpng")
        data = png.tobytes()
        assert (b"fdEC" in data) == (want == "fpng"), want
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)))[:, :, ::-1], img)
    assert encode_png(bars, 2, "fpng").size == encode_png(bars, 2, "libdeflate").size
    with pytest.raises(ExtractionError, match="unknown PNG encoder"):
        encode_png(bars, 2, "zopfli")


def test_mjpeg_keyframes_at_most_one_a_second(clips: dict[str, Path], tmp_path: Path) -> None:
    capped = extract_frames(clips["mjpeg"], tmp_path / "c", ExtractParams(keyframes=True), workers=2)
    assert [round(s.offset, 3) for s in capped.stills] == [0.0, 1.0, 2.0]
    assert capped.params["keyframe_min_interval_applied"] == 1.0
    every = extract_frames(clips["mjpeg"], tmp_path / "e", ExtractParams(keyframes=True, keyframe_min_interval=0),
                           workers=2)
    assert len(every.stills) == 45 and every.params["keyframe_min_interval_applied"] == 0.0
    spaced = extract_frames(clips["a"], tmp_path / "s", ExtractParams(keyframes=True, keyframe_min_interval=2),
                            workers=1)
    offsets = [s.offset for s in spaced.stills]
    assert offsets[0] == 0.0 and all(b - a >= 2.0 - 1e-9 for a, b in zip(offsets, offsets[1:], strict=False))


HEAVY = ("cv2", "av", "numpy", "prefect", "fastapi", "pydantic", "pydantic_settings", "deflate", "distributed")
PROBE = """
import json, sys
sys.argv = ["custody", *sys.argv[1:]]
from pipeline.cli.main import main
code = None
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY),
                  "cli": sorted(m for m in sys.modules if m.startswith("pipeline.cli."))}))
""".replace("HEAVY", repr(HEAVY))


@pytest.mark.parametrize("args", [["exhibit", "--help"], ["--help"], ["exhibit", "list", "--case", "NOPE/1"]])
def test_light_commands_import_no_video_library_nor_prefect(cli, args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], env=cli.env, capture_output=True, text=True,
                          timeout=60)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["heavy"] == [], out
    if args[0] == "exhibit":  # only the command being run is built
        assert "pipeline.cli.cameras" not in out["cli"] and "pipeline.cli.cases" in out["cli"], out
