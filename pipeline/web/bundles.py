"""Bundle builds started from the portal, with progress the page can poll.

The API only records bundle *requests*; an investigator in the portal wants
the bundle now, so the portal asks who receives it and why (both required and
recorded), and which derived material goes in beside the originals (by default
the review material the investigator chose, not every still), then runs
`pipeline.export.bundle.build_bundle` (which stores it under Object Lock and
records `exported`) in a worker thread and reports its progress. The download
streams through the API's content endpoint (hash-checked, recorded as
`downloaded`): the browser is never sent to the S3 origin.
Jobs are kept in this process's memory: a restart loses the progress view,
never the bundle (it is in the bundles bucket and in custody once stored).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from pipeline.access.auth import User
from pipeline.api.deps import EXHIBIT_ID, Services, actor, case_for, load_exhibit, note
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import CustodyError, NotFoundError, UsageError
from pipeline.review import selection
from pipeline.review.objects import checked_chain, object_id
from pipeline.web.perms import perms_for
from pipeline.web.routes import CaseId, content_url, router
from pipeline.web.session import FormDep, check_csrf, current, render

JOB_ID = r"^job-[0-9a-f]{32}$"
TEXT_MAX = 200
JOB_KEEP_SECONDS = 6 * 3600  # how long a finished build stays on its page
_jobs: dict[str, BundleJob] = {}
_jobs_lock = threading.Lock()


@dataclass
class BundleJob:
    """Progress of one build, as the bundle page shows it."""

    id: str
    case_id: str
    user: str
    exhibits: list[str]
    recipient: str = ""
    reason: str = ""
    selection: str = ""
    phase: str = "starting"
    total: int = 0
    done: int = 0
    label: str = ""
    state: str = "running"  # running | done | failed
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        pct = 100 if self.state == "done" else (int(self.done * 100 / self.total) if self.total else 0)
        return {"id": self.id, "state": self.state, "phase": self.phase, "label": self.label, "done": self.done,
                "total": self.total, "percent": min(pct, 100), "error": self.error,
                "exhibits": self.exhibits, "result": self.result, "recipient": self.recipient,
                "reason": self.reason, "selection": self.selection,
                "download": f"/cases/{self.case_id}/bundles/{self.id}/download" if self.state == "done" else None}


def _build(job: BundleJob, svc: Services, c: Case, refs: list[str], user: User, keep: Any) -> None:
    from pipeline.export.bundle import build_bundle

    def plan(phase: str, total: int) -> None:
        job.phase, job.total, job.done = phase, total, 0

    def progress(label: str, n: int) -> None:
        job.label = label
        job.done += n

    work = FsPath(tempfile.mkdtemp(prefix="custody-portal-bundle-", dir=svc.ev.settings.home))
    try:
        from pipeline.export.format import safe_part

        name = f"{safe_part(c.ref, 60)}_bundle_{job.id[-8:]}.zip"
        res = build_bundle(svc.ev, c.ref, refs, work / name, actor=actor(user), recipient=job.recipient,
                           reason=job.reason, progress=progress, plan=plan, keep=keep, selection=job.selection)
        job.result = {k: v for k, v in res.as_dict().items() if k != "path"}
        job.result["object"] = res.object_ref()
        job.phase, job.state = "done", "done"
    except CustodyError as exc:
        job.state, job.error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - shown on the page; the thread must not die silently
        job.state, job.error = "failed", f"internal error ({type(exc).__name__})"
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the stored, locked copy is the bundle of record


def _job(job_id: str, c: Case) -> BundleJob:
    with _jobs_lock:
        job = _jobs.get(job_id)
    if job is None or job.case_id != c.id:
        raise NotFoundError("no such bundle build (finished long ago, or the server restarted)")
    return job


def _exhibits(svc: Services, c: Case, exhibit_id: str | None) -> list[Exhibit]:
    if exhibit_id is not None and not re.fullmatch(EXHIBIT_ID, exhibit_id):
        raise NotFoundError("no such exhibit")
    exhibits = [load_exhibit(svc, c, exhibit_id)] if exhibit_id else svc.ev.exhibits_of(c)  # the case log
    if not exhibits:
        raise NotFoundError("the case has no exhibits to bundle")
    return exhibits


@router.get("/cases/{case_id}/bundles/new")
def bundle_form(request: Request, case_id: CaseId,
                exhibit_id: Annotated[str | None, Query(pattern=EXHIBIT_ID)] = None) -> Response:
    """Who receives it, why, and which derived material goes in beside the originals."""
    svc, user, _ = current(request)
    c = case_for(request, svc, user, case_id, "bundle.request")
    groups = []
    for e in _exhibits(svc, c, exhibit_id):
        objs = svc.ev.objects(checked_chain(svc.ev, e.id).events, roles=("original", "derived"))
        groups.append({"exhibit": e, "originals": [o for o in objs if o.role == "original"],
                       "choices": selection.derived_choices(objs)})
    chosen = [i["object_id"] for g in groups for ch in g["choices"] for i in ch["items"] if i["chosen"]]
    return render(request, "bundle_form.html", case=c, exhibit_id=exhibit_id, groups=groups,
                  chosen=",".join(chosen), perms=perms_for(svc, user, c))


def _text(form: dict[str, str], name: str, what: str) -> str:
    v = " ".join("".join(ch for ch in form.get(name, "") if ch.isprintable()).split())
    if not v:
        raise UsageError(f"say {what}: it is recorded with the bundle")
    if len(v) > TEXT_MAX:
        raise UsageError(f"{what} is longer than {TEXT_MAX} characters")
    return v


@router.post("/cases/{case_id}/bundles")
def start_bundle(request: Request, case_id: CaseId, form: FormDep) -> Response:
    """`bundle.request` on the case (as the API), then build in a worker thread and show its page."""
    svc, user, sess = current(request)
    check_csrf(request, sess, form.get("csrf"))
    c = case_for(request, svc, user, case_id, "bundle.request")
    exhibits = _exhibits(svc, c, form.get("exhibit_id") or None)
    recipient = _text(form, "recipient", "who receives the bundle")
    reason = _text(form, "reason", "why it is disclosed")
    mode = form.get("derived", "chosen")
    if mode not in selection.MODES:
        raise UsageError(f"derived material must be one of {', '.join(selection.MODES)}")
    chosen = {x for x in form.get("objects", "").split(",") if re.fullmatch(r"[0-9a-f]{32}", x)}
    job = BundleJob(f"job-{uuid.uuid4().hex}", c.id, user.name, [e.ref for e in exhibits], recipient, reason,
                    selection.describe(mode, chosen))
    with _jobs_lock:
        cutoff = time.time() - JOB_KEEP_SECONDS
        for old in [j for j in _jobs.values() if j.state != "running" and j.started < cutoff]:
            del _jobs[old.id]
        _jobs[job.id] = job
    note(request, bundle_job=job.id, exhibits=job.exhibits, recipient=recipient, selection=job.selection)
    threading.Thread(target=_build, args=(job, svc, c, job.exhibits, user, selection.keep_function(mode, chosen)),
                     daemon=True, name=f"bundle-{job.id[-8:]}").start()
    return RedirectResponse(f"/cases/{c.id}/bundles/{job.id}", status_code=303)


@router.get("/cases/{case_id}/bundles/{job_id}")
def bundle_page(request: Request, case_id: CaseId, job_id: Annotated[str, Path(pattern=JOB_ID)]) -> Response:
    """Progress page; works without script too (it refreshes itself)."""
    svc, user, _ = current(request)
    c = case_for(request, svc, user, case_id, "bundle.request")
    job = _job(job_id, c)
    return render(request, "bundle.html", case=c, job=job.as_dict(), perms=perms_for(svc, user, c))


@router.get("/cases/{case_id}/bundles/{job_id}/status")
def bundle_status(request: Request, case_id: CaseId, job_id: Annotated[str, Path(pattern=JOB_ID)]) -> dict[str, Any]:
    """What the page polls."""
    svc, user, _ = current(request)
    c = case_for(request, svc, user, case_id, "bundle.request")
    return _job(job_id, c).as_dict()


@router.get("/cases/{case_id}/bundles/{job_id}/download")
def bundle_download(request: Request, case_id: CaseId, job_id: Annotated[str, Path(pattern=JOB_ID)]) -> Response:
    """`evidence.download` on the case, then the content endpoint streams it (recorded as `downloaded`)."""
    svc, user, _ = current(request)
    c = case_for(request, svc, user, case_id, "evidence.download")
    job = _job(job_id, c)
    if job.state != "done":
        raise NotFoundError("the bundle is not ready yet")
    obj = job.result["object"]
    holder = next(e for e in svc.ev.catalog.list_exhibits(c) if e.ref == job.exhibits[0])
    note(request, object=obj["key"], sha256=obj["sha256"])
    return RedirectResponse(content_url(c.id, holder.id, object_id(obj["bucket"], obj["key"])), status_code=303,
                            headers={"Cache-Control": "no-store"})
