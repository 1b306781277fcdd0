"""`custody review ...`: footage on the clock: prepare review copies, timeline, clips, stills, contact sheets."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, say

app = typer.Typer(no_args_is_help=True, help="Review footage on one clock-time axis.")
ExhibitArg = Annotated[str, typer.Argument(help="Exhibit reference, e.g. CAM1/20261129.")]
CaseOpt = Annotated[str | None, typer.Option("--case", help="Case reference (needed if ambiguous).")]


@app.command("prepare")
def prepare(exhibit: ExhibitArg, case: CaseOpt = None,
            only: Annotated[str, typer.Option(help="copy, activity or both.")] = "both",
            json_out: JsonOpt = False) -> None:
    """Make the missing browser-playable review copies (labelled working copies) and activity indexes."""
    from pipeline.errors import UsageError
    from pipeline.review.prepare import prepare_exhibit

    want = {"both": ("copy", "activity"), "copy": ("copy",), "activity": ("activity",)}.get(only)
    if want is None:
        raise UsageError("--only must be copy, activity or both")
    ev = evidence()
    c, e = ev.find_exhibit(exhibit, case)
    done = prepare_exhibit(ev, c, e, actor=actor_for(ev, role="examiner"), want=want)
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "prepared": [p.as_dict() for p in done]})
        return
    for p in done:
        say(f"{p.name}: copy event {p.copy_seq}, activity event {p.activity_seq}"
            + (f" ({'; '.join(p.problems)})" if p.problems else ""))
    say(f"{len(done)} file(s) prepared" if done else "nothing to do: every footage original is prepared")


@app.command("timeline")
def timeline(exhibit: ExhibitArg, case: CaseOpt = None, json_out: JsonOpt = False) -> None:
    """The exhibit on the wall clock: files with their times and how each is known, gaps, coverage."""
    from pipeline.review.objects import checked_chain
    from pipeline.review.timeline import build_timeline

    ev = evidence()
    c, e = ev.find_exhibit(exhibit, case)
    tl = build_timeline({**e.__dict__}, checked_chain(ev, e.id).events)
    if json_out:
        emit_json(tl)
        return
    say(f"{c.ref} {e.ref}: {tl['start']} to {tl['end']} (UTC)")
    for s in tl["coverage"]:
        say(f"  {s['state']:<12} {s['start']} .. {s['end']} {s['seconds']:>9.3f} s {s['reason']}")
    for f in tl["untimed"]:
        say(f"  no known time: {f['name']} ({f['time_how']})")


@app.command("clip")
def clip(exhibit: ExhibitArg, start: Annotated[str, typer.Option("--from", help="Clock time (ISO 8601, UTC).")],
         end: Annotated[str, typer.Option("--to", help="Clock time (ISO 8601, UTC).")], case: CaseOpt = None,
         exact: Annotated[bool, typer.Option("--exact", help="Frame-exact (transcoded) instead of a stream copy "
                                                             "cut at keyframes.")] = False,
         note: Annotated[str, typer.Option(help="Why the clip was made (recorded).")] = "",
         json_out: JsonOpt = False) -> None:
    """Export a clock-time range as a derived clip, recorded as `clip_exported`."""
    from pipeline.review.clips import make_clip

    ev = evidence()
    c, e = ev.find_exhibit(exhibit, case)
    event = make_clip(ev, c, e, start, end, "frame_exact" if exact else "stream_copy",
                      actor=actor_for(ev, role="examiner"), note=note)
    info = next(o for o in event["objects"] if o.get("kind") == "clip")["info"]
    if json_out:
        emit_json({"event_seq": event["seq"], **info})
        return
    say(f"{info['label']}: {info['clip_start']} .. {info['clip_end']}, {info['frames']} frames "
        f"(event #{event['seq']})")


@app.command("still")
def still(exhibit: ExhibitArg, at: Annotated[str, typer.Option("--at", help="Clock time (ISO 8601, UTC).")],
          case: CaseOpt = None, json_out: JsonOpt = False) -> None:
    """Extract and record the still of the frame on screen at a clock time."""
    from pipeline.review.stills import still_at

    ev = evidence()
    c, e = ev.find_exhibit(exhibit, case)
    out = still_at(ev, c, e, actor=actor_for(ev, role="examiner"), clock=at)
    if json_out:
        emit_json(out)
        return
    say(f"{out['source_name']} frame {out['frame_index']} at {out['wallclock']}: pixels {out['pixel_sha256']}")


@app.command("sheet")
def sheet(exhibit: ExhibitArg, case: CaseOpt = None, json_out: JsonOpt = False) -> None:
    """Contact sheets of all the exhibit's stills in clock time, stored and recorded."""
    from pipeline.review.sheets import make_sheets

    ev = evidence()
    c, e = ev.find_exhibit(exhibit, case)
    event = make_sheets(ev, c, e, actor=actor_for(ev, role="examiner"))
    if json_out:
        emit_json({"event_seq": event["seq"], "pages": len(event["objects"])})
        return
    say(f"{len(event['objects'])} page(s) recorded in event #{event['seq']}")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="review")
