"""`custody log ...`: the transparency log and the case logs, by hand (sync, show, rebuild the index, adopt)."""

from __future__ import annotations

import typer

from pipeline.cli.common import CaseOpt, JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, say, say_styled

app = typer.Typer(no_args_is_help=True, help="The transparency log and the case logs.")


@app.command()
def sync(json_out: JsonOpt = False) -> None:
    """Fold every pending chain head into the transparency log now and time-stamp the newest tree head."""
    ev = evidence()
    st = None
    for _ in range(10):
        st = ev.log.tlog.integrate(force=True, stamp=True)
        if st is not None:
            break
    info = {"tree_size": st.size if st else None, "batch": st.batch if st else None,
            "root": st.head.root if st and st.head else None}
    if json_out:
        emit_json(info)
    else:
        say(f"transparency log: {info['tree_size']} leaves (batch {info['batch']}), root {info['root']}")


@app.command()
def show(json_out: JsonOpt = False) -> None:
    """The newest signed tree head of the store's transparency log, and whether it is time-stamped."""
    from pipeline.custody.tlogview import LogView

    ev = evidence()
    view = LogView(ev.store, ev.log.trusted_keys())
    latest = view.latest()
    h = latest.head if latest else None
    info = {"log_id": h.log_id if h else None, "tree_size": h.size if h else 0, "root": h.root if h else None,
            "signed": h.time if h else None, "batch": latest.batch if latest else None,
            "time_stamped": bool(h and view.token(h.size)),
            "problems": [str(f) for f in view.findings]}
    if json_out:
        emit_json(info)
    else:
        say(f"log {info['log_id']}: {info['tree_size']} leaves, root {info['root']}, signed {info['signed']}"
            f"{' (time-stamped)' if info['time_stamped'] else ''}")
        for p in info["problems"]:
            say_styled("[red]  - {}[/]", p)


@app.command("rebuild-index")
def rebuild_index(case: CaseOpt, json_out: JsonOpt = False) -> None:
    """Restore the case's index entries and catalogue records from its case log (they are caches)."""
    from pipeline.custody.reindex import rebuild_indexes

    ev = evidence()
    c = ev.locate_case(case) or ev.catalog.get_case(case)
    written = rebuild_indexes(ev, c)
    if json_out:
        emit_json({"case": c.ref, "restored": written})
    else:
        say(f"restored {len(written)} object(s)" + "".join(f"\n  {k}" for k in written))


@app.command()
def adopt(case: CaseOpt, json_out: JsonOpt = False) -> None:
    """Start the case log of a case made before case logs existed, from the exhibits its index lists."""
    from pipeline.custody.reindex import adopt_case

    ev = evidence()
    c = ev.catalog.get_case(case)
    n = adopt_case(ev, c, actor_for(ev))
    if json_out:
        emit_json({"case": c.ref, "exhibits": n})
    else:
        say(f"case log of {c.ref} records {n} exhibit(s)")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="log")
