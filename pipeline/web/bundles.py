"""Bundle builds started from the portal, with progress the page can poll.

The API only records bundle *requests*; an investigator in the portal wants
the bundle now, so the portal runs `pipeline.bundle.build_bundle` (which
stores it under Object Lock and records `exported`) in a worker thread and
reports its progress. The download is a short-lived presigned link issued by
`presign_bundle_download`, which records `bundle_download_link_issued`.
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
from datetime import timedelta
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import RedirectResponse, Response

from pipeline.access.auth import User
from pipeline.api.deps import EXHIBIT_ID, Services, actor, case_for, load_exhibit, note
from pipeline.custody.catalog import Case
from pipeline.errors import CustodyError, NotFoundError
from pipeline.web.perms import perms_for
from pipeline.web.routes import CaseId, router
from pipeline.web.session import FormDep, check_csrf, current, render

JOB_ID = r"^job-[0-9a-f]{32}$"
LINK_TTL = timedelta(minutes=5)
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
                "exhibits": self.exhibits, "result": self.result,
                "download": f"/cases/{self.case_id}/bundles/{self.id}/download" if self.state == "done" else None}


def _build(job: BundleJob, svc: Services, c: Case, refs: list[str], user: User) -> None:
    from pipeline.export.bundle import build_bundle

    def plan(phase: str, total: int) -> None:
        job.phase, job.total, job.done = phase, total, 0

    def progress(label: str, n: int) -> None:
        job.label = label
        job.done += n

    work = FsPath(tempfile.mkdtemp(prefix="custody-portal-bundle-", dir=svc.ev.settings.home))
    try:
        res = build_bundle(svc.ev, c.ref, refs, work / f"{job.id}.zip", actor=actor(user),
                           reason="built in the portal", progress=progress, plan=plan)
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


@router.post("/cases/{case_id}/bundles")
def start_bundle(request: Request, case_id: CaseId, form: FormDep) -> Response:
    """`bundle.request` on the case (as the API), then build in a worker thread and show its page."""
    svc, user, sess = current(request)
    check_csrf(request, sess, form.get("csrf"))
    exhibit_id = form.get("exhibit_id") or None
    if exhibit_id is not None and not re.fullmatch(EXHIBIT_ID, exhibit_id):
        raise NotFoundError("no such exhibit")
    c = case_for(request, svc, user, case_id, "bundle.request")
    exhibits = [load_exhibit(svc, c, exhibit_id)] if exhibit_id else svc.ev.exhibits_of(c)  # the case log
    if not exhibits:
        raise NotFoundError("the case has no exhibits to bundle")
    job = BundleJob(f"job-{uuid.uuid4().hex}", c.id, user.name, [e.ref for e in exhibits])
    with _jobs_lock:
        cutoff = time.time() - JOB_KEEP_SECONDS
        for old in [j for j in _jobs.values() if j.state != "running" and j.started < cutoff]:
            del _jobs[old.id]
        _jobs[job.id] = job
    note(request, bundle_job=job.id, exhibits=job.exhibits)
    threading.Thread(target=_build, args=(job, svc, c, job.exhibits, user), daemon=True,
                     name=f"bundle-{job.id[-8:]}").start()
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
    """`evidence.download` on the case, then a recorded, 5-minute presigned link."""
    svc, user, _ = current(request)
    c = case_for(request, svc, user, case_id, "evidence.download")
    job = _job(job_id, c)
    if job.state != "done":
        raise NotFoundError("the bundle is not ready yet")
    from pipeline.export.links import presign_bundle_download

    obj = job.result["object"]
    url = presign_bundle_download(svc.ev, c, obj, actor(user), LINK_TTL)
    note(request, object=obj["key"], sha256=obj["sha256"])
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
