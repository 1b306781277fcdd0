"""Power-loss recovery on real ffmpeg footage: H.264/H.265, with and without AAC, cut and corrupted.

Every claim is checked against the uncut recording's own index: which samples survive the cut, their byte
ranges, and the pixels (SHA-256 of the decoded planes) each one decodes to in the uncut file.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.recovery import NO_CONFIG, RecoveryInputError, RecoveryResult, ReferenceUnusable, recover
from pipeline.recovery.audio import AacSplitter
from pipeline.recovery.boxes import read_layout
from pipeline.recovery.session import LOST, OTHER_TRACK, TAIL, TAIL_GARBAGE, ZEROS
from pipeline.recovery.window import Window
from tests import recovery_footage as rf

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 8


@dataclass
class Clip:
    full: Path
    ref: Path | None
    table: list[rf.Sample]
    hashes: list[str]  # decoded frames of the uncut file, in output order

    @property
    def video(self) -> list[rf.Sample]:
        return [s for s in self.table if s.kind == "video"]

    @property
    def audio(self) -> list[rf.Sample]:
        return [s for s in self.table if s.kind == "audio"]


def _clip(d: Path, name: str, ref_seed: int | None = 2, **kw) -> Clip:  # type: ignore[no-untyped-def]
    full = rf.record(d / f"{name}.mp4", seconds=SECONDS, seed=1, **kw)
    ref = rf.record(d / f"{name}_ref.mp4", seconds=SECONDS, seed=ref_seed, **kw) if ref_seed else None
    return Clip(full, ref, rf.sample_table(full), rf.frame_hashes(full))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    """One camera per codec/audio combination: a recording to damage and a different one as reference."""
    d = tmp_path_factory.mktemp("recovery")
    out = {f"{c}-{'aac' if a else 'mute'}": _clip(d, f"{c}_{a}", codec=c, audio=a)
           for c in ("h264", "hevc") for a in (True, False)}
    out["h264-inband"] = _clip(d, "h264_inband", ref_seed=None, codec="h264", audio=True, inband=True)
    out["hevc-inband-b"] = _clip(d, "hevc_inband_b", ref_seed=None, codec="hevc", audio=False, inband=True,
                                 bframes=3)
    out["h264-b"] = _clip(d, "h264_b", codec="h264", audio=True, bframes=3)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inside(s: rf.Sample, ranges: list[list[int]]) -> bool:
    return any(a <= s.pos and s.pos + s.size <= b for a, b in ranges)


def _check_accounting(res: RecoveryResult, damaged: Path) -> None:
    """Every byte of the mdat is either used or reported as skipped, once; the result is JSON."""
    mdat = read_layout(damaged).mdats[0]
    spans = sorted([(a, b) for a, b in res.bytes_used.items] + [(s.start, s.end) for s in res.bytes_skipped])
    assert spans[0][0] == mdat.start and spans[-1][1] == mdat.end
    assert all(prev[1] == nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False))
    json.dumps(res.as_dict())


def _recovered_frames_match(clip: Clip, res: RecoveryResult, out: Path) -> list[int]:
    """Map each decoded output frame to its uncut sample (via the result's segments) and compare pixels.

    Returns the uncut frame indices whose pixels differ.
    """
    video = clip.video
    index_of = {s.pos: i for i, s in enumerate(video)}
    used = [i for i, s in enumerate(video) if _inside(s, res.bytes_used.items)]
    assert len(used) == res.frames, "recovered access units must be exactly the uncut file's samples"
    got = rf.frame_hashes_with_pts(out)
    frame_s = 1 / res.video["fps"]
    differ = []
    for pts_s, h in got:
        seg = next(s for s in reversed(res.segments) if pts_s >= s["start_s"] - 1e-6)
        k = round((pts_s - seg["start_s"]) / frame_s)
        i = used[used.index(index_of[seg["offset"]]) + k]
        if clip.hashes[i] != h:
            differ.append(i)
    return differ


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("camera", ["h264-aac", "h264-mute", "hevc-aac", "hevc-mute"])
def test_cut_recording_recovers_every_surviving_frame_bit_exact(clips: dict[str, Clip], tmp_path: Path,
                                                                camera: str, keep: float) -> None:
    clip = clips[camera]
    damaged = rf.cut(clip.full, tmp_path / "damaged.mp4", keep)
    before = _sha(damaged)
    out = tmp_path / "recovered.mp4"
    progress: list[tuple[int, int]] = []
    res = recover(damaged, out, clip.ref, progress=lambda done, total: progress.append((done, total)))
    n = damaged.stat().st_size
    surviving = [s for s in clip.video if s.pos + s.size <= n]
    assert res.status == "recovered", res.message
    assert progress and progress[-1][0] == progress[-1][1] == n - read_layout(damaged).mdats[0].start
    assert res.method == f"reference:{_sha(clip.ref)}"  # type: ignore[arg-type]
    assert res.frames >= 0.95 * len(surviving)
    assert res.frames_decoded == res.frames
    assert _recovered_frames_match(clip, res, out) == []
    assert res.keyframes == sum(s.key for s in surviving)
    if clip.audio:
        audio_left = [s for s in clip.audio if s.pos + s.size <= n]
        assert res.audio_frames >= 0.95 * len(audio_left)
        # Audio bytes are copied unchanged, frame for frame.
        want = [hashlib.sha256(_read(damaged, s)).hexdigest() for s in audio_left][:res.audio_frames]
        assert rf.packet_hashes(out, "audio") == want
    assert [s.reason for s in res.bytes_skipped] == [TAIL]
    _check_accounting(res, damaged)
    assert _sha(damaged) == before, "the damaged original must never be written to"
    assert res.output and res.output["sha256"] == _sha(out)


def _read(path: Path, s: rf.Sample) -> bytes:
    with path.open("rb") as f:
        f.seek(s.pos)
        return f.read(s.size)


@pytest.mark.parametrize("camera", ["h264-aac", "hevc-aac"])
def test_corrupted_region_is_skipped_and_frames_from_the_next_keyframe_are_exact(
        clips: dict[str, Clip], tmp_path: Path, camera: str) -> None:
    clip = clips[camera]
    damaged = rf.cut(clip.full, tmp_path / "damaged.mp4", 0.9)
    # 16 KiB of noise from the middle of a picture halfway through a GOP in the middle of the recording.
    mid = next(i for i, s in enumerate(clip.video) if i >= len(clip.video) // 2 and i % 25 == 8)
    bad = rf.corrupt(damaged, clip.video[mid].pos + clip.video[mid].size // 2, 16 << 10)
    res = recover(damaged, tmp_path / "recovered.mp4", clip.ref)
    assert res.status == "partial", res.message
    n = damaged.stat().st_size
    hit = [i for i, s in enumerate(clip.video) if s.pos < bad[1] and s.pos + s.size > bad[0]]
    surviving = [s for i, s in enumerate(clip.video) if s.pos + s.size <= n and i not in hit]
    assert res.frames >= 0.95 * len(surviving)
    damage = [s for s in res.bytes_skipped if s.reason == LOST]
    assert len(damage) == 1 and damage[0].start <= bad[0] and damage[0].end >= bad[1]
    assert damage[0].estimated_frames_lost == len(hit)  # exact: frame_num / POC continuity
    # Frames up to the damage, and from the next keyframe after it, are bit-exact; only the ones in between
    # (which reference lost pictures) may differ, and the result names them.
    next_key = next(i for i, s in enumerate(clip.video) if s.key and i > hit[-1])
    differ = _recovered_frames_match(clip, res, tmp_path / "recovered.mp4")
    assert all(hit[-1] < i < next_key for i in differ), differ
    first_after = hit[0]  # recovered index of the first frame after the damage
    assert res.unreliable_frames == [[first_after, first_after + next_key - hit[-1] - 2]]
    assert "may show artefacts" in res.message
    _check_accounting(res, damaged)


def test_damage_inside_a_sample_is_found_by_the_verification_decode(clips: dict[str, Clip], tmp_path: Path) -> None:
    """Length fields intact, payload overwritten: structure cannot tell, the decoder can."""
    clip = clips["h264-mute"]
    damaged = rf.cut(clip.full, tmp_path / "damaged.mp4", 0.9)
    victim = next(i for i, s in enumerate(clip.video) if i > 60 and not s.key and s.size > 2000)
    s = clip.video[victim]
    rf.corrupt(damaged, s.pos + 200, s.size - 400)
    res = recover(damaged, tmp_path / "recovered.mp4", clip.ref)
    assert res.status == "partial"
    next_key = next(i for i, x in enumerate(clip.video) if x.key and i > victim)
    assert res.unreliable_frames == [[victim, next_key - 1]]
    assert "decode with errors" in res.message
    differ = _recovered_frames_match(clip, res, tmp_path / "recovered.mp4")
    assert differ and all(victim <= i < next_key for i in differ)


@pytest.mark.parametrize("camera", ["h264-inband", "hevc-inband-b"])
def test_in_band_parameter_sets_recover_without_a_reference(clips: dict[str, Clip], tmp_path: Path,
                                                            camera: str) -> None:
    clip = clips[camera]
    damaged = rf.cut(clip.full, tmp_path / "damaged.mp4", 0.6)
    out = tmp_path / "recovered.mp4"
    res = recover(damaged, out)
    n = damaged.stat().st_size
    surviving = [s for s in clip.video if s.pos + s.size <= n]
    assert res.status == "recovered", res.message
    assert res.method == "in-band"
    assert res.video and res.video["fps"] == 25 and res.video["frame_rate_source"] == "stream timing information"
    assert res.frames >= 0.95 * len(surviving)
    if camera == "hevc-inband-b":
        assert res.b_frames
        # Presentation order rebuilt from POC: decoded frames in the uncut file's order, bit-exact.
        kept = {s.pos for s in surviving}
        order = rf.presentation_order(clip.full)
        want = [clip.hashes[rank] for rank, pos in enumerate(order) if pos in kept]
        assert [h for _, h in rf.frame_hashes_with_pts(out)] == want
    else:
        assert _recovered_frames_match(clip, res, out) == []
        # The AAC frames have no configuration without a reference: reported, not mistaken for damage.
        assert {s.reason for s in res.bytes_skipped} == {OTHER_TRACK, TAIL}
        assert "supply --reference to recover audio" in res.message
    _check_accounting(res, damaged)


def test_b_frames_with_a_reference_keep_presentation_order(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["h264-b"]
    damaged = rf.cut(clip.full, tmp_path / "damaged.mp4", 0.6)
    out = tmp_path / "recovered.mp4"
    res = recover(damaged, out, clip.ref)
    n = damaged.stat().st_size
    kept = {s.pos for s in clip.video if s.pos + s.size <= n}
    order = rf.presentation_order(clip.full)
    assert res.status == "recovered" and res.b_frames
    want = [clip.hashes[rank] for rank, pos in enumerate(order) if pos in kept]
    assert [h for _, h in rf.frame_hashes_with_pts(out)] == want


@pytest.mark.parametrize("camera", ["h264-aac", "hevc-mute"])
def test_no_reference_and_no_in_band_parameter_sets_is_impossible(clips: dict[str, Clip], tmp_path: Path,
                                                                   camera: str) -> None:
    damaged = rf.cut(clips[camera].full, tmp_path / "damaged.mp4", 0.6)
    out = tmp_path / "recovered.mp4"
    res = recover(damaged, out)
    assert res.status == "impossible" and res.frames == 0
    assert res.message == NO_CONFIG and "--reference" in res.message
    assert not out.exists()


def test_reference_from_another_camera_is_refused_with_a_reason(clips: dict[str, Clip], tmp_path: Path) -> None:
    damaged = rf.cut(clips["h264-aac"].full, tmp_path / "damaged.mp4", 0.6)
    other = rf.record(tmp_path / "other.mp4", codec="h264", audio=False, seconds=1, size="1280x720")
    res = recover(damaged, tmp_path / "recovered.mp4", other)
    assert res.status == "impossible" and "same camera" in res.message
    hevc = recover(damaged, tmp_path / "recovered.mp4", clips["hevc-mute"].ref)
    assert hevc.status == "impossible" and "same camera" in hevc.message
    assert not (tmp_path / "recovered.mp4").exists()


def test_unusable_inputs_raise_usage_errors(clips: dict[str, Clip], tmp_path: Path) -> None:
    damaged = rf.cut(clips["h264-mute"].full, tmp_path / "damaged.mp4", 0.6)
    with pytest.raises(RecoveryInputError, match="never written to"):
        recover(damaged, damaged, clips["h264-mute"].ref)
    with pytest.raises(ReferenceUnusable, match="does not exist"):
        recover(damaged, tmp_path / "r.mp4", tmp_path / "missing.mp4")
    not_media = tmp_path / "notes.txt"
    not_media.write_text("not a video")
    with pytest.raises(ReferenceUnusable):
        recover(damaged, tmp_path / "r.mp4", not_media)
    assert issubclass(RecoveryInputError, UsageError) and issubclass(ReferenceUnusable, UsageError)
    header_only = rf.cut(clips["h264-mute"].full, tmp_path / "header.mp4", 0.000005)
    res = recover(header_only, tmp_path / "r.mp4", clips["h264-mute"].ref)
    assert res.status == "impossible" and "mdat" in res.message


# Peak RSS from VmHWM: ru_maxrss would report the forking pytest process's peak, which exec inherits.
def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_reserved_zeros_at_the_end_are_not_damage_but_garbage_is(clips: dict[str, Clip], tmp_path: Path) -> None:
    """Cameras preallocate: a power cut can leave zeros after the last sample. Noise there is something else."""
    clip = clips["h264-aac"]
    zeros = rf.cut(clip.full, tmp_path / "zeros.mp4", 0.6, unfinalised=True)
    _append(zeros, bytes(3 << 20))
    res = recover(zeros, tmp_path / "a.mp4", clip.ref)
    assert res.status == "recovered", res.message
    assert [s.reason for s in res.bytes_skipped] == [TAIL, ZEROS]
    assert res.bytes_skipped[-1].end == zeros.stat().st_size
    noise = rf.cut(clip.full, tmp_path / "noise.mp4", 0.6, unfinalised=True)
    _append(noise, hashlib.shake_256(b"noise").digest(3 << 20))
    res = recover(noise, tmp_path / "b.mp4", clip.ref)
    assert res.status == "partial" and [s.reason for s in res.bytes_skipped] == [TAIL_GARBAGE]
    assert "unparseable range at the end" in res.message
    _check_accounting(res, noise)


def test_aac_splitter_survives_bytes_that_reconfigure_the_decoder(clips: dict[str, Clip]) -> None:
    """Trial decodes parse whatever follows a frame; some bytes make libav's AAC decoder reconfigure itself
    (here: 54 channels), after which real frames would no longer be found. The splitter must recover."""
    clip = clips["h264-aac"]
    frames = [_read(clip.full, s) for s in clip.audio[10:14]]
    poison = b"\x00" + hashlib.shake_256((600).to_bytes(4, "big")).digest(831)
    data = b"".join(frames) + poison
    asc = bytes.fromhex("118856e500")  # AAC-LC, 48 kHz, mono: what the test camera records
    splitter = AacSplitter(Window(io.BytesIO(data), len(data)), asc, 1, 48000)
    for _ in range(3):
        splitter.frame_length(len(data) - len(poison))  # whatever this finds, it must not stick
        assert splitter.frame_length(0) == len(frames[0])
        assert splitter.frame_length(len(frames[0])) == len(frames[1])
    assert splitter.resets >= 1, "precondition: these bytes no longer reconfigure libav's decoder; pick others"


_MEASURE = """
import json, re, sys, time
from pathlib import Path
from pipeline.recovery import recover
t = time.perf_counter()
res = recover(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), verify=False)
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"frames": res.frames, "audio": res.audio_frames, "status": res.status,
                  "seconds": time.perf_counter() - t, "peak_mb": hwm / 1024}))
"""


def _measure(damaged: Path, out: Path, ref: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(damaged), str(out), str(ref)], capture_output=True,
                          text=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(proc.stdout)


def test_memory_stays_bounded_on_a_long_recording(clips: dict[str, Clip], tmp_path: Path) -> None:
    """~200 MB of media data (the clip's mdat 50 times over, size field 0) recovers in the same memory as 2 MB."""
    clip = clips["h264-aac"]
    small = rf.repeat_mdat(clip.full, tmp_path / "small.mp4", 1)
    large = rf.repeat_mdat(clip.full, tmp_path / "large.mp4", 50)
    a = _measure(small, tmp_path / "small_rec.mp4", clip.ref)  # type: ignore[arg-type]
    b = _measure(large, tmp_path / "large_rec.mp4", clip.ref)  # type: ignore[arg-type]
    mb = large.stat().st_size / 1e6
    print(f"\nrecovery of {mb:.0f} MB: peak RSS {b['peak_mb']:.0f} MB (small file: {a['peak_mb']:.0f} MB), "
          f"{mb / b['seconds']:.0f} MB/s, {b['frames']} frames, {b['audio']} AAC frames")
    for big in (large, tmp_path / "large_rec.mp4"):
        big.unlink()  # 400 MB is too much to leave in pytest's kept tmp dirs
    assert b["status"] == "recovered" and b["frames"] == 50 * a["frames"] and b["audio"] == 50 * a["audio"]
    assert b["peak_mb"] < a["peak_mb"] + 20 and b["peak_mb"] < 120
