"""`custody extract`: stills from an exhibit's footage, recorded in custody."""

from __future__ import annotations

from typing import Annotated, Any

import click
import typer

from pipeline.cli.common import JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, err, say
from pipeline.durations import parse_duration
from pipeline.errors import UsageError
from pipeline.frames.findings import findings_first

MAX_WARNINGS = 8  # on the terminal; the event keeps them all


def extract(exhibit: Annotated[str, typer.Argument(help="Exhibit reference, e.g. JB/1.")],
            case: Annotated[str | None, typer.Option("--case", help="Case reference (needed if ambiguous).")] = None,
            every: Annotated[str | None, typer.Option("--every", help="One still every interval, e.g. 1s.")] = None,
            keyframes: Annotated[bool, typer.Option("--keyframes", help="A still of every keyframe.")] = False,
            keyframe_min_interval: Annotated[str | None, typer.Option(
                "--keyframe-min-interval", help="With --keyframes: at least this long between stills, e.g. 2s "
                "(default: 1s on all-intra footage such as MJPEG, else every keyframe; 0: every keyframe).")] = None,
            scenes: Annotated[bool, typer.Option("--scenes", help="A still at every scene/motion change.")] = False,
            scene_threshold: Annotated[float, typer.Option(help="Mean abs. difference (0-255) on 64x36 grey.")] = 30.0,
            at: Annotated[str, typer.Option("--at", help="Comma-separated times in seconds, e.g. 12.5,30.")] = "",
            png_level: Annotated[int | None, typer.Option(
                "--png-level", min=0, max=12, help="libdeflate level (default 2; higher is smaller and slower; "
                "0 stores the pixels uncompressed, whatever the encoder).")] = None,
            png_encoder: Annotated[str | None, typer.Option(
                "--png-encoder", click_type=click.Choice(["fpng", "libdeflate"]),
                help="fpng (default: ~10 ms a 1080p still, about ffmpeg's bytes; libdeflate for flat pictures) "
                "or libdeflate (~30 ms; what custody before engine 5 used).")] = None,
            workers: Annotated[int | None, typer.Option(
                help="Workers (default: one per core, as many as fit in CUSTODY_FRAMES_MEMORY_MB).")] = None,
            json_out: JsonOpt = False) -> None:
    """Extract lossless stills and record them as derived evidence."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.frames import ExtractParams
    from pipeline.frames.derive import extract_object, footage_objects

    try:
        times = [float(t) for t in at.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--at {at!r}: give seconds separated by commas") from None
    ev = evidence()
    c, e = ev.find_exhibit(exhibit, case)
    gap = None
    if keyframe_min_interval is not None:
        gap = 0.0 if keyframe_min_interval.strip() in ("0", "0s") else parse_duration(keyframe_min_interval)
    try:
        params = ExtractParams(every_seconds=parse_duration(every) if every else None, keyframes=keyframes,
                               keyframe_min_interval=gap, scenes=scenes, scene_threshold=scene_threshold,
                               timestamps=tuple(times), name_prefix=e.ref,
                               **({"png_compression": png_level} if png_level is not None else {}),
                               **({"png_encoder": png_encoder} if png_encoder is not None else {}))
    except ValidationError as exc:
        raise UsageError(_option_errors(exc)) from None
    if not params.wants_anything():
        raise UsageError("choose at least one of --every, --keyframes, --scenes, --at")
    objs, events = footage_objects(ev, e)
    if not objs:
        raise UsageError(f"exhibit {e.ref} has no footage originals to extract from")
    actor = actor_for(ev, role="examiner")
    done = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as prog:
        for o in objs:
            task = prog.add_task((o.original_name or o.key)[:40], total=None)

            def cb(n: int, total: int, task=task) -> None:  # type: ignore[no-untyped-def]
                prog.update(task, completed=n, total=total)

            event = extract_object(ev, c, e, o, params, actor=actor, workers=workers, progress=cb, events=events)
            done.append({"source": o.original_name, "source_sha256": o.sha256, "event_seq": event["seq"],
                         "action": event["action"], **event.get("details", {})})
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "params": params.model_dump(mode="json"), "results": done})
    else:
        for d in done:
            say(f"{d['source']}: {d.get('stills', 0)} stills (event #{d['event_seq']} {d['action']})")
            _tell_damage(d)


def _option_errors(exc: Any) -> str:
    """What is wrong, named by the option the user typed, not by the model's field."""
    parts = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        parts.append(f"{OPTION_OF.get(field, field)}: {e['msg']}")
    return "; ".join(parts)


OPTION_OF = {"every_seconds": "--every", "keyframe_min_interval": "--keyframe-min-interval",
             "scene_threshold": "--scene-threshold", "timestamps": "--at", "png_compression": "--png-level",
             "png_encoder": "--png-encoder"}


def _tell_damage(d: dict) -> None:
    """An incomplete or damaged source is said on stderr, not left in the event for someone to find."""
    warnings = findings_first(d.get("warnings") or [])
    if d.get("complete") is False:
        stop = d.get("decode_stopped_at")
        err.print(f"  {d['source']}: NOT COMPLETE (truncated or damaged); the last frame that decoded is at "
                  + (f"{float(stop):.3f} s" if stop is not None else "none"), markup=False, highlight=False)
    for w in warnings[:MAX_WARNINGS]:
        err.print(f"  warning: {w}", markup=False, highlight=False)
    if len(warnings) > MAX_WARNINGS:
        err.print(f"  ... and {len(warnings) - MAX_WARNINGS} more warnings in event #{d['event_seq']}", markup=False,
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
