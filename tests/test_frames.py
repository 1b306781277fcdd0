"""Frame extraction against real ffmpeg-made footage (generated into tmp dirs, never the repo).

The reference for "is this the right frame" is an independent full sequential decode (no seeking) of the
same clip, keyed by pts; every still's pixel hash must equal the reference frame's hash for its pts.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.frames import (
    BadParamsError,
    ExtractionError,
    ExtractParams,
    NotVideoError,
    extract_frames,
    tool_versions,
)
from pipeline.frames import plan as planmod
from pipeline.frames.extract import engine_params
from pipeline.frames.models import DEFAULT_PNG_LEVEL
from pipeline.frames.png import pixel_sha256
from tests import footage

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("footage")
    return {
        "mp4_b": footage.h264(d / "b.mp4", 4),
        "mp4_nob": footage.h264(d / "nob.mp4", 3, bframes=False),
        "ts_b": footage.h264(d / "b.ts", 3),
        "ts_nob": footage.h264(d / "nob.ts", 3, bframes=False),
        "h265": footage.h265(d / "h.mp4", 3),
        "h265_ts": footage.h265(d / "h.ts", 3),
        "h265_layers": footage.h265(d / "hl.mp4", 3, temporal_layers=True),  # unreferenced: top sub-layer only
        "h265_layers_cra": footage.h265(d / "hc.mp4", 4, gop_s=2, temporal_layers=True),  # + RASL_N in layer 0
        "mjpeg": footage.mjpeg_avi(d / "m.avi", 2),
        "vfr": footage.vfr_mp4(d / "v.mp4"),
        "rot": footage.rotated_mp4(d / "r.mp4", 90, 2),
        "no_moov": footage.truncated_mp4_no_moov(d / "nomoov.mp4"),
        "cut_mp4": footage.truncated_mp4_faststart(d / "cut.mp4"),
        "cut_ts": footage.truncated_ts(d / "cut.ts"),
        "open_gop": footage.open_gop_h264(d / "og.mp4"),
        "intra_refresh": footage.intra_refresh_h264(d / "ir.mp4"),
        "damaged": footage.damaged_mp4(d / "dmg.mp4", [1.48, 2.0, 3.96]),  # mid-GOP, a keyframe, the last frame
        "scenes": footage.two_scenes_mp4(d / "s.mp4"),
        "audio": footage.audio_only(d / "a.m4a"),
    }


def reference(path: Path, autorotate: bool = False) -> dict[int, str]:
    """pts -> pixel hash for every frame, from one sequential ffmpeg decode with no seeking and no select."""
    info = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                           "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    st = json.loads(info)["streams"][0]
    w, h = int(st["width"]), int(st["height"])
    if autorotate:  # only used on the 90-degree clip: ffmpeg's transpose swaps the dimensions
        w, h = h, w
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-copyts",
                           *([] if autorotate else ["-noautorotate"]), "-i", str(path), "-map", "0:v:0",
                           "-vf", "showinfo=checksum=0", "-fps_mode", "passthrough", "-f", "rawvideo",
                           "-pix_fmt", "bgr24", "pipe:1"], capture_output=True)
    pts = [int(m) for m in re.findall(rb"n:\s*\d+\s+pts:\s*(-?\d+)", proc.stderr)]
    size = w * h * 3
    assert len(proc.stdout) >= size * len(pts) - size
    out = {}
    for i, p in enumerate(pts):
        frame = np.frombuffer(proc.stdout[i * size:(i + 1) * size], np.uint8)
        if frame.size == size:
            out[p] = pixel_sha256(frame.reshape(h, w, 3))
    return out


def probe_keyframes(path: Path) -> set[int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,flags",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return {int(p["pts"]) for p in json.loads(out)["packets"] if "K" in p["flags"] and "D" not in p["flags"]}


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_reproducible_bytes_across_runs_and_worker_counts(clips: dict[str, Path], tmp_path: Path) -> None:
    params = ExtractParams(every_seconds=0.5, keyframes=True, timestamps=[1.3], name_prefix="EX-1/cam 2")
    runs = [extract_frames(clips["mp4_b"], tmp_path / f"r{i}", params, workers=w, processes=proc)
            for i, (w, proc) in enumerate(((1, False), (2, False), (2, True)))]
    dumps = [[s.model_dump() for s in r.stills] for r in runs]
    assert dumps[0] == dumps[1] == dumps[2]
    assert files(tmp_path / "r0") == files(tmp_path / "r1") == files(tmp_path / "r2")
    assert runs[0].warnings == runs[1].warnings
    for s in runs[0].stills:
        png = (tmp_path / "r0" / s.png).read_bytes()
        assert hashlib.sha256(png).hexdigest() == s.png_sha256
        assert pixel_sha256(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)) == s.pixel_sha256
        assert s.png.startswith("EX-1_cam_2_t")
    assert runs[0].stills[0].png == "EX-1_cam_2_t000000.000.png"


def test_stills_handed_over_in_memory_are_the_bytes_a_file_run_writes(clips: dict[str, Path], tmp_path: Path) -> None:
    params = ExtractParams(every_seconds=0.5, keyframes=True, name_prefix="EX-1")
    on_disk = extract_frames(clips["mp4_b"], tmp_path / "files", params, workers=2)
    handed: dict[str, bytes | None] = {}
    lock = threading.Lock()

    def on_still(s: Any) -> None:
        with lock:
            handed[s.png] = s.data

    mem = extract_frames(clips["mp4_b"], tmp_path / "mem", params, workers=2, on_still=on_still)
    assert [s.model_dump() for s in mem.stills] == [s.model_dump() for s in on_disk.stills]
    assert sorted(handed) == sorted(s.png for s in mem.stills)
    for s in mem.stills:
        assert handed[s.png] == (tmp_path / "files" / s.png).read_bytes()
        assert hashlib.sha256(handed[s.png] or b"").hexdigest() == s.png_sha256
        assert not (tmp_path / "mem" / s.png).exists()  # never written
        assert (tmp_path / "mem" / s.thumb).read_bytes() == (tmp_path / "files" / s.thumb).read_bytes()
    assert mem.contact_sheets == on_disk.contact_sheets
    for sheet in mem.contact_sheets:
        assert (tmp_path / "mem" / sheet).read_bytes() == (tmp_path / "files" / sheet).read_bytes()


def test_a_held_back_chunk_writes_its_in_memory_stills_and_is_handed_over_once(tmp_path: Path) -> None:
    from pipeline.frames.decode import DecodeOut
    from pipeline.frames.extract import _Handover
    from pipeline.frames.stills import StillOut

    def still(stem: str) -> StillOut:
        return StillOut(pts=1, stem=stem, width=1, height=1, rotation=0, pixel_sha256="", png_sha256="",
                        png=f"{stem}.png", thumb=f"thumbs/{stem}.jpg", data=f"png of {stem}".encode())

    got: list[tuple[str, bytes | None]] = []
    handover = _Handover(lambda s: got.append((s.png, s.data)), tmp_path)
    held = DecodeOut(chunk_id=3, stills=[still("a")], missing=[2])  # may yet be decoded again
    handover.chunk(held)
    assert got == [] and held.stills[0].data is None
    assert (tmp_path / "a.png").read_bytes() == b"png of a"
    handover.chunk(held, final=True)
    handover.chunk(held, final=True)
    assert got == [("a.png", None)]  # once, from its file
    whole = DecodeOut(chunk_id=4, stills=[still("b")])
    handover.chunk(whole)
    assert got[1] == ("b.png", b"png of b") and whole.stills[0].data is None  # the result keeps no pixels
    assert not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("name", ["mp4_b", "mp4_nob", "ts_b", "ts_nob", "h265", "h265_ts", "h265_layers",
                                  "h265_layers_cra", "mjpeg", "open_gop", "intra_refresh"])
def test_formats_extract_the_exact_frames(clips: dict[str, Path], tmp_path: Path, name: str) -> None:
    src = clips[name]
    res = extract_frames(src, tmp_path / "out", ExtractParams(every_seconds=0.7, timestamps=[0.33, 1.9]), workers=1)
    ref = reference(src)
    assert res.complete, res.warnings
    assert res.warnings == []  # intact footage: nothing for an examiner to chase
    assert len(res.stills) >= 4
    first = min(ref)
    ref_pts = np.array(sorted(ref))
    for s in res.stills:
        assert ref[s.pts] == s.pixel_sha256, f"{name}: still at pts {s.pts} is not that frame"
        tb = Fraction(s.time_base)
        assert s.pts_time == pytest.approx(float(s.pts * tb))
        for t in s.requested_times:  # the frame on screen at t: last pts <= t
            target = first + Fraction(repr(t)) / tb
            assert s.pts == ref_pts[ref_pts <= target].max()
        assert (tmp_path / "out" / s.png).is_file() and (tmp_path / "out" / s.thumb).is_file()
    assert res.contact_sheets and (tmp_path / "out" / res.contact_sheets[0]).is_file()


def test_interval_within_one_frame_on_constant_and_vfr(clips: dict[str, Path], tmp_path: Path) -> None:
    for name, step in (("mp4_b", 0.3), ("vfr", 0.25)):
        res = extract_frames(clips[name], tmp_path / name, ExtractParams(every_seconds=step), workers=1)
        ref = reference(clips[name])
        pts = np.array(sorted(ref))
        tb = Fraction(res.stills[0].time_base)
        requested = sorted(t for s in res.stills for t in s.requested_times)
        assert requested == pytest.approx([k * step for k in range(len(requested))])
        for s in res.stills:
            assert ref[s.pts] == s.pixel_sha256
            nxt = pts[pts > s.pts]
            for t in s.requested_times:
                assert s.offset <= t + 1e-9
                if len(nxt):  # still displayed at t: the next frame starts after t
                    assert float((int(nxt[0]) - pts[0]) * tb) > t
    # VFR: the 5 fps section holds each frame for 0.2 s, so several 0.25 s requests can map to one frame
    vfr = extract_frames(clips["vfr"], tmp_path / "vfr2", ExtractParams(every_seconds=0.1), workers=1)
    assert any(len(s.requested_times) > 1 for s in vfr.stills)


def _nal(nal_type: int, tid: int, layer: int = 0, body: bytes = b"\x11\x22\x33") -> bytes:
    return bytes([(nal_type << 1) | (layer >> 5), ((layer & 31) << 3) | (tid + 1)]) + body


def _hvcc(length_size: int = 4) -> bytes:
    return bytes([1] + [0] * 20 + [0xF8 | (length_size - 1)] + [0])


def _prefixed(*nals: bytes, size: int = 4) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


@pytest.mark.parametrize(("framing", "pictures", "skippable"), [
    ("hvcc", [(19, 0), (1, 0), (0, 0), (1, 0)], True),  # IDR, TRAIL_R, TRAIL_N: one sub-layer
    ("hvcc", [(19, 0), (1, 0), (2, 1), (1, 0), (2, 1)], True),  # TSA_N only in the top sub-layer
    ("hvcc", [(19, 0), (0, 0), (1, 1)], False),  # TRAIL_N in layer 0 while layer 1 exists: may be a reference
    ("annexb", [(19, 0), (0, 0), (1, 0)], True),
    ("annexb", [(19, 0), (8, 0), (2, 2)], False),
    ("hvcc", [(19, 0), (1, 0, 1)], False),  # a second (MV-HEVC) layer: not judged
])
def test_hevc_unreferenced_pictures_are_skipped_only_in_the_top_sub_layer(
        framing: str, pictures: list[tuple[int, ...]], skippable: bool) -> None:
    from pipeline.frames.nal import HevcLayers

    layers = HevcLayers(_hvcc() if framing == "hvcc" else None)
    for nal_type, tid, *layer in pictures:
        sei = _nal(39, 0, body=b"\x00\x00\x03" * 4)  # a prefix SEI before the picture, as encoders write
        pic = _nal(nal_type, tid, *layer)
        layers.packet(_prefixed(sei, pic) if framing == "hvcc" else b"\x00\x00\x00\x01" + sei + b"\x00\x00\x01" + pic)
    assert layers.nonref_skippable is skippable


def test_hevc_packets_without_a_picture_are_not_guessed_at() -> None:
    from pipeline.frames.nal import HevcLayers

    for extradata, packet in ((_hvcc(), _prefixed(_nal(39, 0))), (_hvcc(), b"\xff\xff\xff\xff\x02\x01"),
                              (None, b"no start code here")):
        layers = HevcLayers(extradata)
        layers.packet(packet)
        assert not layers.nonref_skippable


def test_unreferenced_frames_are_skipped_where_the_stream_allows(clips: dict[str, Path], tmp_path: Path) -> None:
    """The decision the exactness tests above rely on: made per stream, and recorded with the extraction."""
    from pipeline.frames.probe import probe

    expected = {"mp4_b": True, "ts_b": True, "h265": True, "h265_ts": True, "h265_layers": True,
                "h265_layers_cra": False, "mjpeg": False}
    assert {k: probe(clips[k]).skip_unreferenced for k in expected} == expected
    for name in ("h265", "h265_layers_cra"):
        res = extract_frames(clips[name], tmp_path / name, ExtractParams(every_seconds=1), workers=1)
        assert res.params["decode"]["skip_unreferenced_applied"] is expected[name]


def test_keyframes_are_exactly_ffprobes(clips: dict[str, Path], tmp_path: Path) -> None:
    # open GOP: non-IDR keyframes need their GOP decoded; intra refresh: the GOP before too
    for name in ("mp4_b", "ts_b", "h265", "open_gop", "intra_refresh"):
        res = extract_frames(clips[name], tmp_path / name, ExtractParams(keyframes=True), workers=2)
        assert res.complete, res.warnings
        assert {s.pts for s in res.stills} == probe_keyframes(clips[name])
        ref = reference(clips[name])
        assert all(ref[s.pts] == s.pixel_sha256 and s.reasons == ["keyframe"] for s in res.stills)


def test_intra_refresh_keyframes_are_decoded_from_a_refresh_that_is_complete(
        clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh "keyframe" is a P picture: a decoder started there shows nothing for a GOP. Seeking one keyframe
    earlier gets every frame first time; before, each chunk missed its frames and was decoded again, serially."""
    import pipeline.frames.extract as extract_mod
    from pipeline.frames.probe import probe

    info = probe(clips["intra_refresh"])
    keys = [int(k) for k in info.key_pts]
    n = info.refresh_points[0][1]  # the recovery point's recovery_frame_cnt (x264: within one GOP)
    assert 0 < n < 25 and [(k, m) for k, m, _ in info.refresh_points] == [(k, n) for k in keys[1:]]
    assert probe(clips["open_gop"]).refresh_points == () and probe(clips["mp4_b"]).refresh_points == ()
    frames = [int(p) for p in info.frame_pts]
    assert info.seek_key(frames[25 + n - 1]) == keys[0]  # the refresh from the keyframe at frame 25 ends at 25+n
    assert info.seek_key(frames[25 + n]) == keys[1] and info.seek_key(frames[-1]) == keys[-1]
    again = []
    real = extract_mod.decode_batch
    monkeypatch.setattr(extract_mod, "decode_batch", lambda task: again.append(task) or real(task))
    res = extract_frames(clips["intra_refresh"], tmp_path / "o", ExtractParams(every_seconds=0.5), workers=2)
    assert res.complete and res.warnings == [] and len(res.stills) == 10
    assert again == []  # no chunk had to be decoded a second time


def test_damage_spreads_past_a_refresh_keyframe_until_its_refresh_completes() -> None:
    from pipeline.frames.bitstream import Taint

    taint = Taint()
    for i in range(12):  # a refresh keyframe at 4 taking 3 pictures (clean from 7); damage at 2 and at 9
        taint.packet(i, i in (0, 4), "zeros" if i in (2, 9) else None, refresh=3 if i == 4 else None)
    assert taint.affected == {2, 3, 4, 5, 6, 9, 10, 11}
    plain = Taint()
    for i in range(8):
        plain.packet(i, i in (0, 4), "zeros" if i == 2 else None)
    assert plain.affected == {2, 3}  # an intra keyframe stops it at once


def test_rotation_is_applied_and_recorded(clips: dict[str, Path], tmp_path: Path) -> None:
    res = extract_frames(clips["rot"], tmp_path / "o", ExtractParams(every_seconds=1), workers=1)
    s = res.stills[0]
    assert s.rotation in (90, 270) and (s.width, s.height) == (240, 320)
    assert {x.rotation for x in res.stills} == {s.rotation} and res.probe["rotation"] == s.rotation
    upright = reference(clips["rot"], autorotate=True)  # ffmpeg's own autorotate as the oracle
    assert all(upright[x.pts] == x.pixel_sha256 for x in res.stills)
    thumb = cv2.imread(str(tmp_path / "o" / s.thumb))
    assert thumb.shape[0] > thumb.shape[1]  # the thumbnail is upright too
    keys = extract_frames(clips["rot"], tmp_path / "k", ExtractParams(keyframes=True), workers=1)
    assert keys.stills and all(upright[x.pts] == x.pixel_sha256 and x.rotation == s.rotation for x in keys.stills)


def test_truncated_without_moov_reports_instead_of_crashing(clips: dict[str, Path], tmp_path: Path) -> None:
    res = extract_frames(clips["no_moov"], tmp_path / "o", ExtractParams(every_seconds=1), workers=1)
    assert res.stills == [] and not res.complete and res.decode_stopped_at is None
    assert "moov" in res.warnings[0]


@pytest.mark.parametrize("name", ["cut_mp4", "cut_ts"])
def test_truncated_media_extracts_what_decodes(clips: dict[str, Path], tmp_path: Path, name: str) -> None:
    res = extract_frames(clips[name], tmp_path / "o", ExtractParams(every_seconds=0.5), workers=2)
    again = extract_frames(clips[name], tmp_path / "o2", ExtractParams(every_seconds=0.5), workers=1)
    assert res.warnings == again.warnings and res.stills == again.stills
    assert not res.complete and res.warnings
    assert res.stills and res.decode_stopped_at is not None
    assert 0.5 < res.decode_stopped_at < 4.0
    assert max(s.offset for s in res.stills) <= res.decode_stopped_at + 1e-9


def test_frames_the_decoder_patched_up_are_flagged_and_a_damaged_end_is_incomplete(clips: dict[str, Path],
                                                                                  tmp_path: Path) -> None:
    """Zeroed bytes inside packets (bad sectors): every packet is there, so only the decoder's own corrupt
    flag tells that it concealed errors. The stills of those frames say so, the other damaged frame decoded on
    the way is named, a damaged last frame makes the file incomplete, a frame predicted from a patched-up one is
    flagged too, and the flags do not depend on workers."""
    res = extract_frames(clips["damaged"], tmp_path / "o", ExtractParams(every_seconds=0.5), workers=2)
    again = extract_frames(clips["damaged"], tmp_path / "o2", ExtractParams(every_seconds=0.5), workers=1)
    assert res.stills == again.stills and res.warnings == again.warnings
    flagged = [round(s.offset, 2) for s in res.stills if s.decoder_concealed]
    assert flagged == [1.48, 2.0, 2.48], flagged  # 2.48 is predicted from the patched-up keyframe at 2.0
    assert any("still at 2.480s" in w and "predicted from a frame the decoder concealed" in w for w in res.warnings)
    assert sum("concealed errors in this frame" in w for w in res.warnings) == 2
    assert not res.complete and any("final GOP" in w and "concealed" in w for w in res.warnings)
    clean = extract_frames(clips["mp4_nob"], tmp_path / "c", ExtractParams(every_seconds=0.5), workers=2)
    assert clean.complete and not any(s.decoder_concealed for s in clean.stills)
    assert not any("concealed" in w for w in clean.warnings)
    keys = extract_frames(clips["damaged"], tmp_path / "k", ExtractParams(keyframes=True), workers=2)
    assert [round(s.offset, 2) for s in keys.stills if s.decoder_concealed] == [2.0]
    assert not keys.complete


def test_zeroed_bytes_are_found_in_the_coded_data_and_mark_every_still_decoded_from_them(tmp_path: Path) -> None:
    """CABAC, what cameras write, decodes zeroed bytes into a wrong picture and may flag nothing (a P-frame here);
    the NAL syntax says zeros cannot be there. The damaged keyframe's GOP and the final GOP carry it: stills
    there are marked, the damage is named with its times, a damaged final GOP makes the file incomplete, and
    the same holds after a remux to Matroska and for zeroed sectors of an MPEG-TS file (Annex B)."""
    mp4 = footage.damaged_mp4(tmp_path / "z.mp4", [1.0, 2.52, 3.8], cabac=True, middle=True)  # a key, two P
    mkv = tmp_path / "z.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-c", "copy", str(mkv)], check=True)
    for src in (mp4, mkv):
        res = extract_frames(src, tmp_path / src.suffix[1:], ExtractParams(every_seconds=0.5), workers=2)
        assert [round(s.offset, 2) for s in res.stills if s.bitstream_damaged] == [1.0, 1.48], src
        assert res.probe["damaged_packets"] == 3 and not res.complete
        said = [w for w in res.warnings if "coded data of 3 packet(s) is damaged" in w]
        assert said and "1.000s, 2.520s, 3.800s" in said[0] and "42 picture(s)" in said[0], res.warnings
        assert any("still at 1.480s" in w and "damaged" in w for w in res.warnings)
        assert any("final GOP" in w and "damaged coded data" in w for w in res.warnings)
    # the P-frame at 2.52 s: the decoder says nothing of it, the syntax check does
    clean_gop = [s for s in res.stills if 2.0 <= s.offset < 2.5]
    assert clean_gop and not any(s.bitstream_damaged or s.decoder_concealed for s in clean_gop)
    from pipeline.frames.probe import probe

    # no false alarm on a clean multi-slice stream (as many cameras send): units of every size in one packet,
    # some with a length prefix that looks like a start code (00 00 01 xx: 256-511 bytes)
    sliced = footage.h264(tmp_path / "sliced.mp4", 2, size="640x360", bitrate="600k",
                          extra=["-x264-params", "slices=8"])
    assert probe(sliced).bitstream_damage == ()
    # zeroed 4 KiB sectors of an MPEG-TS file: the demuxer's corrupt flag and the zeros inside a unit
    sectors = tmp_path / "sectors.ts"
    footage.h264(sectors, 4, bframes=False, bitrate="2M")
    size = sectors.stat().st_size
    with open(sectors, "r+b") as f:
        f.seek(size // 3)
        f.write(bytes(4096))
    res = extract_frames(sectors, tmp_path / "sectors", ExtractParams(keyframes=True), workers=1)
    assert res.probe["damaged_packets"] >= 1 and any("is damaged" in w for w in res.warnings), res.warnings


def test_padding_a_remux_keeps_inside_units_is_no_damage_and_a_zeroed_slice_tail_is_still_found(tmp_path: Path
                                                                                                ) -> None:
    """Annex B footage may carry zero bytes after its units (trailing_zero_8bits); `ffmpeg -c copy` into MP4 keeps
    them inside the length-prefixed units, where libavcodec drops them: the pictures are the recorded ones, so no
    still may be called damaged. A slice whose tail was zeroed is found by both: the syntax (far more zeros than
    padding) and the decoder."""
    raw, padded, mp4 = tmp_path / "cam.h264", tmp_path / "padded.h264", tmp_path / "remux.mp4"
    footage.h264(raw, 2, bframes=False, bitrate="400k")
    padded.write_bytes(raw.read_bytes().replace(b"\x00\x00\x00\x01", b"\x00" * 6 + b"\x01"))
    subprocess.run(["ffmpeg", "-v", "error", "-framerate", "25", "-i", str(padded), "-c", "copy", str(mp4)],
                   check=True)
    res = extract_frames(mp4, tmp_path / "o", ExtractParams(every_seconds=0.5), workers=2)
    assert res.complete and res.probe["damaged_packets"] == 0, res.warnings
    assert len(res.stills) == 4 and not any(s.bitstream_damaged or s.decoder_concealed for s in res.stills)
    plain = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-framerate", "25", "-i", str(raw), "-c", "copy", str(plain)], check=True)
    same = extract_frames(plain, tmp_path / "p", ExtractParams(every_seconds=0.5), workers=2)
    assert [s.pixel_sha256 for s in res.stills] == [s.pixel_sha256 for s in same.stills]
    assert mp4.stat().st_size > plain.stat().st_size  # the padding is there
    tail = footage.damaged_mp4(tmp_path / "tail.mp4", [1.0], cabac=True)  # the second half of a keyframe zeroed
    cut = extract_frames(tail, tmp_path / "t", ExtractParams(every_seconds=0.5), workers=2)
    assert [round(s.offset, 2) for s in cut.stills if s.decoder_concealed] == [1.0, 1.48], cut.warnings
    assert [round(s.offset, 2) for s in cut.stills if s.bitstream_damaged] == [1.0, 1.48]  # too long for padding


def test_damage_only_the_decoder_finds_is_a_damaged_span_of_the_extraction(tmp_path: Path) -> None:
    """Bytes overwritten with other data break no NAL rule; the decoder's flag finds them. The extraction's
    record then carries that run too (the timeline draws it), from the frame to the next keyframe."""
    clip = footage.damaged_mp4(tmp_path / "o.mp4", [1.0], overwrite=True)
    res = extract_frames(clip, tmp_path / "o", ExtractParams(every_seconds=0.5), workers=2)
    assert res.probe["damaged_packets"] == 0
    assert [round(s.offset, 2) for s in res.stills if s.decoder_concealed] == [1.0, 1.48]
    (span,) = res.probe["damaged_spans"]
    assert (span["start"], span["end"], span["pictures"]) == (1.0, 2.0, 25) and "concealed" in span["problem"]


@pytest.mark.parametrize("make", [footage.h264, footage.h265])
def test_a_seek_in_mpeg_ts_with_b_frames_lands_on_its_keyframe(tmp_path: Path, make: Any) -> None:
    """MPEG-TS seeks by decode timestamps, so a seek to a keyframe's pts landed past it and every chunk fell back
    to decoding from the start (6x slower on HEVC). Each seek now starts at the keyframe asked for, and the
    stills are the MP4's, pixel for pixel."""
    from pipeline.frames.demux import Input, Source, frames_from
    from pipeline.frames.probe import probe

    ts, mp4 = make(tmp_path / "b.ts", 4), tmp_path / "b.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(ts), "-c", "copy", str(mp4)], check=True)
    info = probe(ts)
    assert info.key_lead > 0 and len(info.key_pts) >= 3
    inp = Input(Source.of(info))
    try:
        for key in info.key_pts[1:]:
            pkt, _ = next(frames_from(inp, int(key), []))
            assert pkt.pts == key and pkt.is_keyframe
    finally:
        inp.close()
    params = ExtractParams(every_seconds=0.5, keyframes=True)
    got = extract_frames(ts, tmp_path / "t", params, workers=2)
    want = extract_frames(mp4, tmp_path / "m", params, workers=2)
    assert got.complete and [s.pixel_sha256 for s in got.stills] == [s.pixel_sha256 for s in want.stills]


def test_mpeg_ps_after_a_seek_gives_the_frames_of_its_times(tmp_path: Path) -> None:
    """MPEG-PS seeks by dts too, but after the earlier seek flagged a P-frame as a keyframe and the keyframe as
    none: starting there gave the still at 0.72 s the picture of 0.60 s. Such a seek is not kept, and every still
    is the TS copy's, pixel for pixel."""
    ps, ts = tmp_path / "p.mpg", tmp_path / "p.ts"
    subprocess.run(["ffmpeg", "-v", "error", *footage._src(8, "320x240", 25), "-c:v", "mpeg2video", "-g", "15",
                    "-bf", "2", str(ps)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(ps), "-c", "copy", str(ts)], check=True)
    for params in (ExtractParams(every_seconds=0.37), ExtractParams(keyframes=True)):
        got = extract_frames(ps, tmp_path / "p", params, workers=2)
        want = extract_frames(ts, tmp_path / "t", params, workers=2)
        assert got.complete and [(round(s.offset, 3), s.pixel_sha256) for s in got.stills] == \
            [(round(s.offset, 3), s.pixel_sha256) for s in want.stills]


def test_h264_with_b_frames_in_avi_gives_the_frames_of_its_times(tmp_path: Path) -> None:
    """AVI stamps H.264 packets in decode order (its demuxer makes up monotonic pts) and its header counts ticks
    of a half-frame time base: a still 1 s into a GOP showed the frame 80 ms later, and the clean file was said
    to be truncated. The stills are now the MP4's, pixel for pixel and time for time, and the file complete."""
    mp4, avi = footage.h264(tmp_path / "b.mp4", 4, gop_s=2.0), tmp_path / "b.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-c", "copy", str(avi)], check=True)
    for params in (ExtractParams(every_seconds=0.5), ExtractParams(keyframes=True), ExtractParams(scenes=True)):
        got = extract_frames(avi, tmp_path / "a", params, workers=2)
        want = extract_frames(mp4, tmp_path / "m", params, workers=2)
        assert got.complete and not any("truncated" in w for w in got.warnings), got.warnings
        assert [(round(s.offset, 3), s.pixel_sha256) for s in got.stills] == \
            [(round(s.offset, 3), s.pixel_sha256) for s in want.stills]


def test_interlaced_stills_are_said_to_be_two_woven_fields(tmp_path: Path) -> None:
    """CCTV often records interlaced: a still is then two fields 1/50 s apart, kept as coded, and says so."""
    src = tmp_path / "il.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ilme+ildct", "-x264-params", "tff=1",
                    str(src)], check=True)
    res = extract_frames(src, tmp_path / "o", ExtractParams(every_seconds=1), workers=1)
    assert [s.interlaced for s in res.stills] == [True, True]
    assert any("2 of 2 stills are interlaced" in w and "1/50 s apart" in w for w in res.warnings), res.warnings
    clean = extract_frames(footage.h264(tmp_path / "p.mp4", 2), tmp_path / "p", ExtractParams(every_seconds=1))
    assert not any(s.interlaced for s in clean.stills) and not any("interlaced" in w for w in clean.warnings)


def test_a_ten_bit_source_is_said_to_be_rounded_to_eight_bit_stills(tmp_path: Path) -> None:
    src = tmp_path / "h10.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "1",
                    "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error", str(src)],
                   check=True)
    res = extract_frames(src, tmp_path / "o", ExtractParams(every_seconds=1), workers=1)
    assert res.complete and res.probe["pix_fmt"] == "yuv420p10le"
    assert [w for w in res.warnings if "10-bit" in w and "8-bit RGB" in w], res.warnings


def test_scene_cut_found(clips: dict[str, Path], tmp_path: Path) -> None:
    res = extract_frames(clips["scenes"], tmp_path / "o", ExtractParams(scenes=True), workers=2)
    assert [round(s.offset, 3) for s in res.stills] == [0.0, 2.0]
    assert all("scene" in s.reasons for s in res.stills)


def test_not_video_and_bad_params(clips: dict[str, Path], tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 100)
    with pytest.raises(NotVideoError, match="really a video"):
        extract_frames(text, tmp_path / "o", ExtractParams(every_seconds=1))
    with pytest.raises(NotVideoError, match="no video stream"):
        extract_frames(clips["audio"], tmp_path / "o", ExtractParams(every_seconds=1))
    with pytest.raises(ExtractionError, match="no such file"):
        extract_frames(tmp_path / "missing.mp4", tmp_path / "o", ExtractParams(every_seconds=1))
    with pytest.raises(BadParamsError):
        extract_frames(clips["mp4_b"], tmp_path / "o", ExtractParams())


def test_raw_elementary_streams_are_refused_with_what_to_do(tmp_path: Path) -> None:
    """Some DVRs export bare Annex B streams: no container, so no timestamps to place a still in time."""
    raws = ((footage.h264(tmp_path / "cam.h264", 2), "H264"), (footage.h265(tmp_path / "cam.hevc", 2), "HEVC"))
    for raw, codec in raws:
        with pytest.raises(NotVideoError, match=f"raw {codec} elementary stream.*-c copy"):
            extract_frames(raw, tmp_path / "o", ExtractParams(every_seconds=1))


def test_metadata_wallclock_versions(clips: dict[str, Path], tmp_path: Path) -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    calls: list[tuple[int, int]] = []
    res = extract_frames(clips["mp4_nob"], tmp_path / "o", ExtractParams(every_seconds=1, timestamps=[99]),
                         workers=1, wallclock_start=start, progress=lambda d, t: calls.append((d, t)))
    assert all(s.wallclock == start + timedelta(seconds=s.offset) for s in res.stills)
    assert any("outside the footage" in w for w in res.warnings)
    assert calls and calls[-1][0] == calls[-1][1] == len(res.stills)
    assert set(tool_versions()) >= {"opencv", "ffmpeg", "numpy", "python"}
    assert res.params["every_seconds"] == 1
    enc = res.params["png_encoder"]  # every knob that decides the PNG bytes, with the compressor's version
    assert enc["encoder"] == "fpng" and enc["fpng"].startswith(f"fpng (python fpng {tool_versions()['fpng']})")
    assert "smaller kept" in enc["flat_rule"]
    assert enc["libdeflate"] == {"level": DEFAULT_PNG_LEVEL, "idat_chunk": 1 << 20, "ancillary_chunks": "none",
                                 "deflate": f"libdeflate {tool_versions()['libdeflate']} (python deflate "
                                            f"{tool_versions()['deflate']}), zlib container"}
    assert res.params["png_encoder"] != engine_params(ExtractParams(every_seconds=1, png_encoder="libdeflate"))[
        "png_encoder"]


def test_dask_backend_identical(clips: dict[str, Path], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    params = ExtractParams(every_seconds=0.5, keyframes=True)
    local = extract_frames(clips["ts_b"], tmp_path / "local", params, workers=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        remote = extract_frames(clips["ts_b"], tmp_path / "dask", params, dask=client)
    assert [s.model_dump() for s in local.stills] == [s.model_dump() for s in remote.stills]
    assert files(tmp_path / "local") == files(tmp_path / "dask")


def test_plan_is_pure_and_gop_aligned() -> None:
    fp = np.arange(0, 100, dtype=np.int64)  # 100 frames, tb 1/10 => 10 fps
    kp = np.arange(0, 100, 20, dtype=np.int64)
    wanted, warn = planmod.plan_wanted(fp, kp, Fraction(1, 10), every_seconds=3.0, keyframes=True, timestamps=(55,))
    assert sorted(wanted) == [0, 20, 30, 40, 60, 80, 90]
    assert warn and "outside" in warn[0]
    chunks = planmod.plan_chunks(sorted(wanted), fp, kp)
    for c in chunks:
        if c.seek_pts is not None:
            assert c.seek_pts in kp and all(p >= c.seek_pts for p in c.wanted)
    key_only = [c for c in chunks if c.keys_only]
    assert all(set(c.wanted) <= set(kp.tolist()) for c in key_only)
    assert planmod.frame_at(fp, Fraction(299, 10)) == 29


def test_an_interval_shorter_than_a_frame_takes_every_frame_once_without_walking_every_request() -> None:
    from pipeline.frames.modes import REQUESTS_LISTED

    fp = np.arange(0, 1500 * 512, 512, dtype=np.int64)  # a minute at 25 fps, time base 1/12800
    kp = fp[::25]
    # 6e11 requests: engine 10 never finished planning this; the work now follows the 1500 frames
    wanted, warn = planmod.plan_wanted(fp, kp, Fraction(1, 12800), every_seconds=1e-10)
    assert sorted(wanted) == fp.tolist()
    assert all(len(w.requested) == REQUESTS_LISTED for p, w in wanted.items() if p != fp[-1])
    assert wanted[0].requested[:3] == [0.0, 1e-10, 2e-10]
    assert warn and f"first {REQUESTS_LISTED}" in warn[0]
    # an ordinary interval over a frame on screen for a long time (a 3 s gap in VFR footage) lists each request
    gap = np.array([0, 10, 20, 50, 60], dtype=np.int64)  # tb 1/10: frame 20 is on screen from 2 s to 5 s
    wanted, warn = planmod.plan_wanted(gap, gap[:1], Fraction(1, 10), every_seconds=1.0)
    assert {p: w.requested for p, w in wanted.items()} == {0: [0.0], 10: [1.0], 20: [2.0, 3.0, 4.0], 50: [5.0],
                                                           60: [6.0]}
    assert not warn


def test_frame_requests_refuse_infinite_times_and_too_many_chosen_times() -> None:
    """An infinite interval was accepted by the API and crashed the planner later; NaN times were recorded."""
    from pydantic import ValidationError

    from pipeline.cli.extract import _option_errors
    from pipeline.frames.models import MAX_TIMESTAMPS

    for bad, option in (({"every_seconds": float("inf")}, "--every"), ({"timestamps": [1.0, float("nan")]}, "--at"),
                        ({"keyframe_min_interval": float("inf")}, "--keyframe-min-interval"),
                        ({"timestamps": list(range(MAX_TIMESTAMPS + 1))}, "--at"),
                        ({"scene_threshold": 300.0}, "--scene-threshold")):
        with pytest.raises(ValidationError) as caught:
            ExtractParams(**bad)
        assert _option_errors(caught.value).startswith(f"{option}: "), bad
    assert len(ExtractParams(timestamps=list(range(MAX_TIMESTAMPS))).timestamps) == MAX_TIMESTAMPS


def test_probe_lists_again_when_its_side_open_sees_another_stream(clips: dict[str, Path]) -> None:
    from concurrent.futures import Future

    from pipeline.frames.probe import _agreed, _Listing, probe

    src = clips["mp4_b"]
    disagreeing: Future = Future()
    disagreeing.set_result((7, _Listing(np.zeros(0, np.int64), np.zeros(0, np.int64), [], False, 0), []))
    failed: Future = Future()
    failed.set_exception(IndexError("no such stream"))
    info = probe(src)
    for side in (disagreeing, failed):
        (pts, keys, _, skippable, *_), _ = _agreed(side, src, info.stream_index)
        assert skippable is False  # H.264: not HEVC's question (VideoInfo.skip_unreferenced says yes)
        assert np.array_equal(pts, info.frame_pts) and np.array_equal(keys, info.key_pts)


def test_packet_timestamps_are_sorted_and_deduplicated_like_np_unique() -> None:
    import random

    from pipeline.frames.probe import _sorted_unique

    rng = random.Random(7)
    for n in (0, 1, 2, 3, 50, 2000):
        values = [rng.randint(-3, n // 2 + 1) for _ in range(n)]  # negatives and repeats, as B-frame pts give
        got = _sorted_unique(values)
        assert got.dtype == np.int64 and np.array_equal(got, np.unique(np.asarray(values, dtype=np.int64))), n


def test_default_workers_fit_the_memory_budget() -> None:
    from pipeline.frames.executor import cores, default_workers

    assert default_workers() == cores()  # frame size unknown: one per core
    assert default_workers(1920, 1080, 400) == min(cores(), 4)  # ~55 MB per 1080p worker, measured
    assert default_workers(1280, 720, 400) == min(cores(), 10)
    assert default_workers(3840, 2160, 200) == 1  # never fewer than one
