"""`custody exhibit clock` and `custody exhibit metadata`: camera clocks and what the originals say."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import CaseOpt, ExhibitOpt, JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, say


def exhibit_clock(case: CaseOpt, exhibit: ExhibitOpt,
                  camera_time: Annotated[str, typer.Option("--camera-time", help="What the camera showed.")],
                  reference_time: Annotated[str, typer.Option("--reference-time", help="Reference clock, same "
                                                                                       "instant.")],
                  note: Annotated[str, typer.Option(help="How the check was made.")] = "",
                  json_out: JsonOpt = False) -> None:
    """Record the camera clock against a reference clock; displayed times apply the offset."""
    from pipeline.intake.clock import CLOCK_ACTION, clock_parameters

    ev = evidence()
    c, e = ev.get(case, exhibit)
    params = clock_parameters(camera_time, reference_time, note)
    event = ev.record(c, e, CLOCK_ACTION, actor=actor_for(ev), parameters=params)
    if json_out:
        emit_json({"case": c.ref, "exhibit": e.ref, "event_seq": event["seq"], **params})
    else:
        say(f"camera clock offset {params['offset_ms'] / 1000:+.3f} s recorded (event #{event['seq']})")


def exhibit_metadata_cmd(case: CaseOpt, exhibit: ExhibitOpt, json_out: JsonOpt = False) -> None:
    """Extracted metadata of an exhibit's originals; camera times also shown corrected by the clock offset."""
    from pipeline.review.views import exhibit_metadata

    ev = evidence()
    _c, e = ev.get(case, exhibit)
    md = exhibit_metadata(ev, e)
    if json_out:
        emit_json(md)
        return
    if md["clock_offset_ms"] is not None:
        say(f"camera clock offset {md['clock_offset_ms'] / 1000:+.3f} s (corrected times are on the reference clock)")
    for item in md["items"]:
        m = item["metadata"]
        say(f"{item['status']:20} {item['kind']:6} sha256 {(item['source'] or {}).get('sha256', '')[:16]}…")
        for k in sorted(m):
            say(f"    {k}: {m[k]}")



def register(exhibit_app: typer.Typer) -> None:
    exhibit_app.command("clock")(exhibit_clock)
    exhibit_app.command("metadata")(exhibit_metadata_cmd)
