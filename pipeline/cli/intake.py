"""`custody ingest` and `custody upload`: originals from local files (or through a remote API).

The source is walked by `intake.files` (regular files only, links recorded, special files and
anything of CUSTODY_HOME refused, each file read through the inode that was checked); what was
already taken from the same card into the same exhibit is recognised (`intake.card`). Exit 0 when
the work is recorded, even if something local failed afterwards (then with a warning).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.common import CaseOpt, ExhibitOpt, JsonOpt, actor_for, evidence, progress_bar
from pipeline.cli.output import emit_json, say, say_styled
from pipeline.errors import UsageError


def ingest(files: Annotated[list[Path], typer.Argument(help="Files or directories to store as originals.")],
           case: CaseOpt, exhibit: ExhibitOpt,
           officer: Annotated[str, typer.Option(help="Officer who produced the exhibit.")],
           description: Annotated[str, typer.Option(help="Exhibit description (new exhibits).")] = "",
           also_hash: Annotated[str, typer.Option("--also-hash", help="Extra digests: md5,sha1")] = "",
           json_out: JsonOpt = False) -> None:
    """Store local files as locked originals, each with its custody event (and what they are: probe, EXIF)."""
    _local(files, case, exhibit, officer, description, "local-file", {}, _algorithms(also_hash), None, json_out)


def _local(paths: list[Path], case: str, exhibit: str, officer: str, description: str, source: str,
           params: dict[str, Any], algorithms: tuple[str, ...], limit_mb_s: float | None, json_out: bool) -> None:
    from pipeline.intake.files import walk_sources
    from pipeline.intake.upload import ExhibitAhead, ExhibitRaceLost
    from pipeline.settings import load_settings

    walk = walk_sources(paths, load_settings().home)
    ev = evidence()
    who = actor_for(ev, officer, "officer")
    early: list[str] = []
    ahead = ExhibitAhead(ev, case, exhibit, officer, who, description, early)  # a new one is recorded meanwhile
    c, e = ahead.case, ahead.exhibit
    try:
        results, others, warnings = store_walk(ev, c, e, walk, source, params, algorithms, who, limit_mb_s,
                                               ready=ahead.ready)
        ahead.ready()  # an empty walk still records the exhibit, as before
    except ExhibitRaceLost:  # another intake created this reference meanwhile: add to its exhibit instead
        c, e = ahead.recorded()
        results, others, warnings = store_walk(ev, c, e, walk, source, params, algorithms, who, limit_mb_s)
    finally:
        ahead.settle()
    warnings = early + warnings
    if json_out:
        emit_json({"case": c.ref, "case_id": c.id, "exhibit": e.ref, "exhibit_id": e.id, "objects": results,
                   "not_stored": others, "warnings": warnings})
    else:
        _print_results(results, others, warnings)


def _algorithms(also_hash: str) -> tuple[str, ...]:
    return ("sha256", *[a.strip().lower() for a in also_hash.split(",") if a.strip()])


def store_walk(ev: Any, c: Any, e: Any, walk: Any, source: str, params: dict[str, Any],
               algorithms: tuple[str, ...], who: Any, limit_mb_s: float | None = None,
               ready: Callable[[], None] | None = None
               ) -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
    """Each regular file through the one intake path; links and refusals recorded once, in one event.

    `ready` (`ExhibitAhead.ready`) is called before anything is stored or recorded under the exhibit.
    Returns (results, items not stored, warnings).
    """
    from pipeline.intake.card import CardItems
    from pipeline.intake.files import Changed, open_pinned
    from pipeline.intake.upload import PREHASH_MAX_BYTES, offer, repair_local_state, store_original
    from pipeline.text import escape_invisible

    warnings = repair_local_state(ev.settings.home)
    guard = walk.guard
    card = CardItems(ev.store, e.id)
    others: list[dict[str, str]] = [i.as_record() for i in walk.others]
    turns: dict[str, threading.Lock] = {}
    turns_lock = threading.Lock()

    def same_bytes(sha: str | None) -> Any:
        """Files with the same bytes take turns (files are stored side by side): the second then finds the
        first in the case's hash index and is linked to it, as one at a time would."""
        if sha is None:
            return contextlib.nullcontext()
        with turns_lock:
            return turns.setdefault(sha, threading.Lock())

    def one(item: Any, adv: Callable[[int], None]) -> dict[str, Any] | None:
        from hashing.stream import hash_file

        try:
            with open_pinned(item, guard) as pinned:
                sha = None
                if item.size <= PREHASH_MAX_BYTES or card.maybe_known(item.source_path, item.size):
                    sha = hash_file(pinned, ("sha256",)).sha256
                    if card.stored(item.source_path, sha):
                        adv(item.size)
                        return {"original_name": item.name, "source_path": item.source_path, "status":
                                "already_stored", "sha256": sha, "size": item.size,
                                "message": "already stored from this card into this exhibit; not recorded again"}
                o = offer(item.name, source, {**params, "source_path": item.source_path,
                                              "submitted_name": escape_invisible(item.name)})
                with same_bytes(sha):
                    r = store_original(ev, c, e, pinned, o, actor=who, algorithms=algorithms, progress=adv,
                                       limit_mb_s=limit_mb_s, expected_sha256=sha, ready=ready).as_dict()
        except Changed as exc:
            others.append({**item.as_record(), "status": "refused_changed", "message": str(exc)})
            return None
        card.add({"path": item.source_path, "sha256": r["sha256"], "size": r["size"], "event_seq": r["event_seq"],
                  "key": r["key"]})
        warnings.extend(f"{item.source_path}: {w}" for w in r.get("warnings") or [])
        return {**r, "source_path": item.source_path}

    try:
        results = [r for r in each_with_progress(walk.files, one, SMALL_FILE_WORKERS) if r is not None]
        if ready is not None:
            ready()
        new = [o for o in others if not card.recorded(o)]
        for i in range(0, len(new), 500):  # bounded events, however hostile the card
            ev.record(c, e, "items_not_stored", actor=who, parameters={**params, "source": source},
                      details={"items": new[i:i + 500], "reason": "links are recorded with their target text, "
                               "never followed; only regular files are read"})
        for o in new:
            card.add(o)
    finally:
        card.flush()
    return results, others, warnings


SMALL_FILE_BYTES = 8 * 1024 * 1024
SMALL_FILE_WORKERS = 4


def each_with_progress(items: list[Any], fn: Callable[[Any, Callable[[int], None]], Any],
                       workers: int = 1) -> list[Any]:
    """Run `fn(item, advance)` for each item (a walk Item, or a Path) with a progress bar per item and in total.

    With `workers` > 1, small files go through that many at once: a card of stills is bound by S3 round trips
    (eight small requests a file), not by bandwidth, so overlapping them is what makes a big card fast; files
    of SMALL_FILE_BYTES or more stay one at a time (bounded memory, one progress bar that means something).
    Results keep the input order; the first failure stops what has not started and is raised.
    """
    from concurrent.futures import ThreadPoolExecutor

    def size(x: Any) -> int:
        return int(x.size) if hasattr(x, "size") else Path(x).stat().st_size

    with progress_bar() as prog:
        overall = prog.add_task(f"total ({len(items)} files)", total=sum(size(x) for x in items))

        def run(x: Any) -> Any:
            task = prog.add_task(x.name[:40], total=size(x))

            def adv(n: int) -> None:
                prog.advance(task, n)
                prog.advance(overall, n)

            try:
                return fn(x, adv)
            finally:
                prog.remove_task(task)

        small = [i for i, x in enumerate(items) if workers > 1 and size(x) < SMALL_FILE_BYTES]
        results: dict[int, Any] = {}
        if small:
            with ThreadPoolExecutor(workers, thread_name_prefix="intake") as pool:
                futures = {i: pool.submit(run, items[i]) for i in small}
                try:
                    for i, f in futures.items():
                        results[i] = f.result()
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
        for i, x in enumerate(items):
            if i not in results:
                results[i] = run(x)
    return [results[i] for i in range(len(items))]


def _print_results(results: list[dict[str, Any]], others: list[dict[str, str]], warnings: list[str]) -> None:
    already = [r for r in results if r["status"] == "already_stored"]
    for r in results:
        if r["status"] == "already_stored":
            continue
        extra = " (linked to an identical earlier upload in this case)" if r.get("linked") else ""
        extra += f" (resumed: {r['resumed_parts']} parts reused)" if r.get("resumed_parts") else ""
        say(f"{r['status']:20} {r['original_name']}  sha256 {r['sha256']}  ({r['size']} bytes){extra}")
        if r["status"] != "ok":
            say(f"  {r['message']}")
    if already:
        say(f"already stored from this card: {len(already)} file(s), not recorded again")
    for o in others:
        target = f" -> {o['target']}" if "target" in o else ""
        say(f"{o['status']:20} {o['path']}{target}  ({o['message']})")
    for w in warnings:
        say_styled("[yellow]warning:[/] {}", w)


def upload(paths: Annotated[list[Path], typer.Argument(help="Files or directories; each file is its own original.")],
           case: CaseOpt, exhibit: ExhibitOpt,
           officer: Annotated[str, typer.Option(help="Officer who seized / produced the exhibit.")],
           seized_at: Annotated[str | None, typer.Option("--seized-at", help="When seized (ISO 8601).")] = None,
           location: Annotated[str | None, typer.Option(help="Where seized.")] = None,
           device: Annotated[str | None, typer.Option(help="Camera or device the footage came from.")] = None,
           description: Annotated[str, typer.Option(help="Exhibit description (new exhibits).")] = "",
           limit_rate: Annotated[float | None, typer.Option("--limit-rate", min=0.1,
                                                            help="Cap the upload at this many MB/s.")] = None,
           also_hash: Annotated[str, typer.Option("--also-hash", help="Extra digests: md5,sha1")] = "",
           api: Annotated[str | None, typer.Option("--api", help="Upload through this custody API base URL "
                                                                 "instead of S3 directly.")] = None,
           token: Annotated[str | None, typer.Option("--token", envvar="CUSTODY_API_TOKEN",
                                                     help="API token (or CUSTODY_API_TOKEN).")] = None,
           json_out: JsonOpt = False) -> None:
    """Upload field footage as originals: resumable (rerun after an interruption), hashed while sent.

    Bad input (empty, not media, truncated, broken EXIF) is stored all the same and flagged with a status.
    A rerun recognises what was already stored from the same card into the same exhibit.
    """
    from pipeline.intake.seizure import seizure_parameters

    params = seizure_parameters(seized_at, location, device)
    if api:
        _upload_via_api(api, token, paths, case, exhibit, officer, description, params, json_out)
        return
    _local(paths, case, exhibit, officer, description, "field-upload", params, _algorithms(also_hash), limit_rate,
           json_out)


def _upload_via_api(api: str, token: str | None, paths: list[Path], case: str, exhibit: str, officer: str,
                    description: str, params: dict[str, Any], json_out: bool) -> None:
    """The same upload through the HTTP API (not resumable: a rerun sends the file again)."""
    from pipeline.intake.api_client import ApiClient
    from pipeline.intake.files import Changed, open_pinned, walk_sources
    from pipeline.settings import load_settings

    if not token:
        raise UsageError("--api needs --token (or CUSTODY_API_TOKEN)")
    home = load_settings().home
    walk = walk_sources(paths, home)
    guard = walk.guard
    client = ApiClient(api, token)
    case_id, exhibit_id = client.exhibit(case, exhibit, officer, description)
    others = [i.as_record() for i in walk.others]

    def one(item: Any, adv: Callable[[int], None]) -> dict[str, Any] | None:
        try:
            with open_pinned(item, guard) as pinned:
                return client.upload(case_id, exhibit_id, pinned, params, adv, name=item.name)
        except Changed as exc:
            others.append({**item.as_record(), "status": "refused_changed", "message": str(exc)})
            return None

    results = [r for r in each_with_progress(walk.files, one) if r is not None]
    if json_out:
        emit_json({"case": case, "case_id": case_id, "exhibit": exhibit, "exhibit_id": exhibit_id,
                   "objects": results, "not_stored": others})
    else:
        for r in results:
            say(f"{r['status']:20} {r['original_name']}  sha256 {r['sha256']}  ({r['size']} bytes)")
        for o in others:
            say(f"{o['status']:20} {o['path']}  ({o['message']}; not sent)")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("upload")(upload)
