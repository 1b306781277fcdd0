"""recover(): rebuild a playable working copy of an MP4 whose moov was never written.

The damaged file is only read. Its mdat is walked once, forward, through a bounded window; each recovered
sample is muxed as it is found, so memory does not grow with the recording (only the muxer's index does,
a few bytes per sample). Everything needed to repeat the recovery lands in the RecoveryResult.
"""

from __future__ import annotations

import hashlib
import time
from fractions import Fraction
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.recovery import h264, h265
from pipeline.recovery.audio import AacSplitter
from pipeline.recovery.boxes import Layout, read_layout
from pipeline.recovery.config import REFERENCE_PACKETS, VideoConfig, read_reference
from pipeline.recovery.inband import InBand, find_parameter_sets
from pipeline.recovery.mux import ConfigMismatch
from pipeline.recovery.result import NO_CONFIG, RecoveryResult
from pipeline.recovery.session import AUDIO_DAMAGE, DAMAGE, LOST, OTHER_TRACK, TAIL, TAIL_GARBAGE, Progress, Session
from pipeline.recovery.verify import decode_check
from pipeline.recovery.walker import Walker
from pipeline.recovery.window import DEFAULT_WINDOW, Window

_MAX_SAMPLE = (1 << 24) - 1  # a 4-byte NAL length under 16 MiB starts with a zero byte (see the resync regex)
_MIN_SAMPLE_CAP = 2 << 20


class RecoveryInputError(UsageError):
    """The damaged file or the output path cannot be used."""


def recover(damaged: Path, out: Path, reference: Path | None = None, progress: Progress | None = None,
            verify: bool = True) -> RecoveryResult:
    """Recover the video (and AAC audio) samples of `damaged` into a new MP4 at `out`.

    `reference`: a healthy file from the same camera (codec configuration, timing, audio); without one, the
    parameter sets must be in the stream. `verify` decodes the result once to find damage the structure
    cannot show. Raises UsageError subclasses for unusable paths or reference; every other outcome,
    including "impossible", is a RecoveryResult.
    """
    t0 = time.perf_counter()
    damaged, out = Path(damaged), Path(out)
    reference = Path(reference) if reference is not None else None
    _check_paths(damaged, out, reference)
    layout = read_layout(damaged)
    res = RecoveryResult("impossible", "", damaged=_describe(damaged, layout))
    if layout.has_moov:
        res.warnings.append("the file still has a moov box; it was ignored: samples are found by walking the "
                            "media data")
    if not layout.mdats:
        res.message = ("no 'mdat' box: the file holds no media data to recover (it was cut before the camera wrote "
                       "any, or it is not an MP4/MOV)")
        return _finish(res, t0)
    ref = read_reference(reference) if reference is not None else None
    with damaged.open("rb") as f:
        if ref is not None:
            video, audio, syntax = ref.video, ref.audio, ref.video.syntax()
            res.method, res.reference = f"reference:{ref.sha256}", ref.as_dict()
            res.warnings += ref.notes
        else:
            found = find_parameter_sets(Window(f, layout.mdats[-1].end), layout.mdats[0].start)
            if found is None:
                res.message = NO_CONFIG
                return _finish(res, t0)
            video, audio, syntax = _inband_config(found), None, found.syntax
            res.method = "in-band"
            res.parameters["parameter_sets_at"] = found.offset
            res.warnings.append("no reference: timing comes from the stream's own timing information and audio, "
                                "if any, is not recovered (its bytes are reported as skipped)")
            if found.annex_b:
                res.warnings.append("parameter sets were found behind Annex B start codes; samples are only "
                                    "recovered where they are length-prefixed")
        res.codec = video.codec
        cap = min(_MAX_SAMPLE, max(_MIN_SAMPLE_CAP, 8 * (video.max_sample or _MAX_SAMPLE)))
        res.parameters.update({"nal_length_size": video.length_size, "max_sample_bytes": cap,
                               "window_bytes": DEFAULT_WINDOW, "audio": "aac" if audio else None, "verify": verify,
                               "reference_packets_max": REFERENCE_PACKETS if ref else 0})
        other_tracks = bool(ref and any(not t.startswith(("video:", "audio:")) for t in ref.tracks))
        session = Session(out, video, audio, ref.path if ref else None, syntax, res, progress,
                          sum(m.end - m.start for m in layout.mdats), cap, other_tracks)
        try:
            for mdat in layout.mdats:
                win = Window(f, mdat.end)
                splitter = AacSplitter(win, audio.extradata, audio.channels, audio.sample_rate) if audio else None
                cut = mdat.declared_end is None or mdat.declared_end > mdat.end
                walker = Walker(win, syntax, video.length_size, cap, splitter, data_cut=cut)
                for ev in walker.walk(mdat.start):
                    session.handle(ev, win)
                session.finish_walk()
                res.parameters["audio_trial_decodes"] = splitter.trials if splitter else 0
                res.parameters["audio_decoder_resets"] = splitter.resets if splitter else 0
        except ConfigMismatch as exc:
            session.abort()
            source = "the reference does" if ref else "the in-band parameter sets do"
            res.message = (f"{exc}: {source} not fit this recording; supply a reference recorded by the same "
                           "camera with the same settings")
            return _finish(res, t0)
        except BaseException:
            session.abort()  # no half-written working copy is left behind
            raise
        session.close()
    return _finish(_summarise(session, verify), t0)


def _check_paths(damaged: Path, out: Path, reference: Path | None) -> None:
    if not damaged.is_file():
        raise RecoveryInputError(f"damaged file {damaged} does not exist")
    if out.exists() and out.resolve() == damaged.resolve():
        raise RecoveryInputError("the output must be a new file: the damaged original is never written to")
    if reference is not None and out.exists() and out.resolve() == reference.resolve():
        raise RecoveryInputError("the output must not overwrite the reference file")
    if not out.parent.is_dir():
        raise RecoveryInputError(f"output directory {out.parent} does not exist")


def _describe(path: Path, layout: Layout) -> dict:
    return {"name": path.name, "size": layout.file_size, "boxes": [list(b) for b in layout.boxes],
            "mdat": [[m.start, m.end, m.declared_end] for m in layout.mdats]}


def _inband_config(found: InBand) -> VideoConfig:
    vps, sps, pps = found.units()
    if found.codec == "h264":
        extradata = h264.build_avcc(sps, pps, found.length_size)
    else:
        extradata = h265.build_hvcc(vps, sps, pps, found.length_size)
    # Timing is filled in from the first keyframe's decoder (SPS/VPS timing information) by the Session.
    return VideoConfig(found.codec, extradata, found.length_size, [*vps, *sps, *pps], Fraction(1, 25), 1,
                       frame_rate_source="assumed")


def _finish(res: RecoveryResult, t0: float) -> RecoveryResult:
    res.elapsed_s = round(time.perf_counter() - t0, 3)
    return res


def _finish(res: RecoveryResult, t0: float) -> RecoveryResult:
    res.elapsed_s = round(time.perf_counter() - t0, 3)
    return res


def _summarise(session: Session, verify: bool) -> RecoveryResult:
    res, v, audio = session.res, session.video, session.audio
    res.video, res.audio = v.as_dict(), audio.as_dict() if audio else None
    res.b_frames = bool(session.clock and session.clock.reorders)
    res.segments = session.segments
    res.duration_s = round(float(res.frames * session.frame_s), 3)
    res.timeline_s = round(float(session.clock.span * session.frame_s), 3) if session.clock else 0.0
    if session.clock and session.clock.adjusted:
        res.warnings.append(f"{session.clock.adjusted} picture(s) had picture order counts that would show them "
                            "before they decode: their presentation times were moved later")
    if res.frames == 0:
        session.out.unlink(missing_ok=True)
        if [s.reason for s in res.bytes_skipped if s.reason != OTHER_TRACK] == [TAIL]:
            res.message = (f"the recording was cut inside its first video sample: only {session.total} bytes of "
                           "media data survive and no complete keyframe is among them")
            return res
        source = f"the reference's {v.codec} configuration" if session.reference else "the in-band parameter sets"
        res.message = (f"no video keyframe in the media data parses with {source}: supply a reference recorded by "
                       "the same camera with the same settings (or the media data holds no H.264/H.265 video)")
        return res
    corrupt = 0
    if verify:
        check = decode_check(session.out)
        res.frames_decoded = check.decoded
        for t in check.corrupt_pts_s:
            n = session.frame_at(t)
            if n is not None:
                corrupt += 1
                session.mark_corrupt(n)
        if check.error:
            res.warnings.append(f"verification decode stopped early: {check.error}")
    res.output = _describe_output(session.out)
    damage = [s for s in res.bytes_skipped if s.reason in DAMAGE]
    res.status = "partial" if damage or corrupt else "recovered"
    msg = f"recovered {res.frames} frames ({res.duration_s:.2f} s, {res.keyframes} keyframes)"
    if audio is not None:
        msg += f" and {res.audio_frames} AAC frames"
    for reason, what in ((LOST, "damaged range(s) where video was lost"),
                         (AUDIO_DAMAGE, "range(s) between video samples that are neither video nor AAC"),
                         (TAIL_GARBAGE, "unparseable range at the end")):
        hit = [s for s in damage if s.reason == reason]
        if hit:
            msg += f"; {len(hit)} {what} ({sum(s.end - s.start for s in hit)} bytes) skipped"
            if reason == LOST:
                msg += f", about {sum(s.estimated_frames_lost for s in hit)} frames: the timeline keeps their place"
    if corrupt:
        msg += f"; {corrupt} frame(s) decode with errors"
    if res.unreliable_frames:
        spans = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in res.unreliable_frames)
        msg += f"; frames {spans} may show artefacts (they depend on damaged or lost pictures)"
    if verify and res.frames_decoded < res.frames:
        msg += f"; the decoder drops {res.frames - res.frames_decoded} frame(s) whose reference pictures are lost"
    other = [s for s in res.bytes_skipped if s.reason not in DAMAGE and s.reason.startswith("not video")]
    if other:
        msg += (f"; {sum(s.end - s.start for s in other)} bytes of other data (audio or another track) were not "
                "recovered" + ("" if session.reference else ": supply --reference to recover audio"))
    if res.b_frames:
        msg += "; B-frames: presentation order rebuilt from picture order counts"
    res.message = msg
    return res


def _describe_output(path: Path) -> dict:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return {"name": path.name, "size": path.stat().st_size, "sha256": h.hexdigest(), "container": "mp4"}
