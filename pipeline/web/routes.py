"""Server-rendered portal pages: sign-in, cases, case, exhibit, object views and downloads.

Every decision goes through the API's own functions (`case_for`,
`exhibit_for`, `AuthStore.allowed`), so a page shows exactly what the caller
could fetch from the API and a refusal here is the same refusal, audited.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from pipeline.access.auth import Unauthenticated, User
from pipeline.api.cases import DOWNLOAD_TTL, list_cases, object_id
from pipeline.api.deps import CASE_ID, EXHIBIT_ID, OBJECT_ID, Services, actor, case_for, exhibit_for, note, services
from pipeline.api.downloads import presigned_download
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import IntegrityError, NotFoundError
from pipeline.review.views import exhibit_metadata, exhibit_view
from pipeline.web.perms import perms_for
from pipeline.web.session import (
    COOKIE,
    PRE_COOKIE,
    FormDep,
    PortalRoute,
    check_csrf,
    current,
    render,
    session_store,
    set_session_cookie,
)

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
STATIC = FsPath(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
INLINE_MAX = 16 * 1024 * 1024  # images shown in the page are read whole so their hash can be checked
INLINE_KINDS = ("thumbnail", "contact_sheet", "still")

CaseId = Annotated[str, Path(pattern=CASE_ID)]
ExhibitId = Annotated[str, Path(pattern=EXHIBIT_ID)]
ObjectId = Annotated[str, Path(pattern=OBJECT_ID)]


# ---- static files and sign-in -----------------------------------------------------
def static(name: Annotated[str, Path(pattern=r"^[a-z]+\.(css|js)$")]) -> Response:
    """The one CSS and one JS file; a fixed name pattern, so no path can leave the folder."""
    path = STATIC / name
    if not path.is_file():
        raise NotFoundError("no such file")
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


# static files are not evidence: served without a session and without an audit entry
router.add_api_route("/static/portal/{name}", static, methods=["GET"], route_class_override=APIRoute)


@router.get("/")
def home(request: Request) -> Response:
    """Signed-in users go to their cases, others to sign-in."""
    sess = session_store(request).get(request.cookies.get(COOKIE))
    return RedirectResponse("/cases" if sess else "/signin", status_code=303)


@router.get("/signin")
def signin_page(request: Request) -> Response:
    """Sign-in form with a double-submit CSRF token (there is no session to bind it to yet)."""
    pre = secrets.token_urlsafe(24)
    resp = render(request, "signin.html", pre=pre, error=None)
    resp.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                    path="/signin", max_age=1800)
    return resp


@router.post("/signin")
def signin(request: Request, form: FormDep) -> Response:
    """Swap a valid token for a fresh session id (a new id each time: no session fixation)."""
    pre = request.cookies.get(PRE_COOKIE)
    token, csrf = form.get("token", "")[:200], form.get("csrf", "")
    svc = services(request)
    if not pre or not secrets.compare_digest(pre, csrf):
        note(request, reason="sign-in form CSRF check failed")
        return render(request, "signin.html", status_code=403, pre=pre or "",
                      error="The sign-in form expired. Please try again.")
    try:
        user = svc.auth.authenticate(token.strip())
    except Unauthenticated as exc:
        note(request, reason=f"sign-in refused: {exc}")
        return render(request, "signin.html", status_code=401, pre=pre,
                      error="That token was not accepted. Check it and try again.")
    note(request, user=user.name, role=user.role, reason="signed in")
    sess = session_store(request).create(token.strip(), user)
    resp = RedirectResponse("/cases", status_code=303)
    set_session_cookie(resp, request, sess.sid)
    resp.delete_cookie(PRE_COOKIE, path="/signin")
    return resp


@router.post("/signout")
def signout(request: Request, form: FormDep) -> Response:
    """Forget the session on the server, not only in the browser."""
    _svc, _user, sess = current(request)
    check_csrf(request, sess, form.get("csrf"))
    session_store(request).drop(sess.sid)
    resp = RedirectResponse("/signin", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# ---- cases ----------------------------------------------------------------------
@router.get("/cases")
def cases_page(request: Request) -> Response:
    """Exactly the API's case list for this user (assigned cases, or all for supervisory roles)."""
    svc, user, _ = current(request)
    cases = list_cases(request, svc, user)
    return render(request, "cases.html", cases=cases)


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: CaseId) -> Response:
    """One case and its exhibits: `case.read` on the case, as the API's GET /api/cases/{id}."""
    svc, user, _ = current(request)
    c = case_for(request, svc, user, case_id, "case.read")
    exhibits = svc.ev.catalog.list_exhibits(c)
    return render(request, "case.html", case=c, exhibits=exhibits, perms=perms_for(svc, user, c))


# ---- exhibit --------------------------------------------------------------------
def _hms(value: Any) -> str:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return dt.strftime("%H:%M:%S")


def _gap(event: dict[str, Any]) -> dict[str, Any] | None:
    """Camera recording gaps, whatever the recorder named the fields, as one plain sentence."""
    action = str(event.get("action", ""))
    if "gap" not in action:
        return None
    facts = {**(event.get("parameters") or {}), **(event.get("details") or {})}
    gap = facts.get("gap") if isinstance(facts.get("gap"), dict) else facts
    start = gap.get("start") or gap.get("gap_start") or gap.get("from")
    end = gap.get("end") or gap.get("gap_end") or gap.get("to")
    reason = gap.get("reason") or ("camera did not come back" if gap.get("open_ended") else "")
    camera = gap.get("camera") or ""
    seconds = None
    try:
        seconds = (datetime.fromisoformat(str(end).replace("Z", "+00:00"))
                   - datetime.fromisoformat(str(start).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        pass
    text = f"Recording gap {_hms(start)}–{_hms(end)}"
    extra = [x for x in (f"{seconds:.0f} s" if seconds is not None else "", camera, reason) if x]
    return {"text": text + (f" ({', '.join(extra)})" if extra else ""), "start": start, "end": end}


def _summary(event: dict[str, Any]) -> str:
    objs = event.get("objects") or []
    names = [o.get("original_name") or o.get("kind") or o.get("role") for o in objs if o.get("role") != "reference"]
    out = []
    if names:
        shown = ", ".join(str(n) for n in names[:3])
        out.append(shown + (f" and {len(names) - 3} more" if len(names) > 3 else ""))
    params = event.get("parameters") or {}
    for k in ("what", "recipient", "reason", "offset_ms", "location", "device"):
        if params.get(k) not in (None, ""):
            out.append(f"{k.replace('_', ' ')}: {params[k]}")
    return "; ".join(out)


def _timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"seq": e["seq"], "time": e["time"], "action": e["action"].replace("_", " "),
             "actor": e.get("actor") or {}, "gap": _gap(e), "summary": _summary(e)} for e in events]


def _gallery(view: dict[str, Any]) -> dict[str, Any]:
    objs = view["objects"]
    by_sha = {o["sha256"]: o for o in objs}
    stills = []
    for o in objs:
        if o["role"] == "derived" and o.get("kind") == "thumbnail":
            info = o.get("info") or {}
            full = by_sha.get(info.get("still_png_sha256", ""))
            stills.append({"thumb": o, "full": full, "pts": info.get("pts_time")})
    stills.sort(key=lambda s: float(s["pts"] or 0))
    sheets = [o for o in objs if o["role"] == "derived" and o.get("kind") == "contact_sheet"]
    originals = [o for o in objs if o["role"] == "original"]
    return {"stills": stills, "sheets": sheets, "originals": originals}


@router.get("/cases/{case_id}/exhibits/{exhibit_id}")
def exhibit_page(request: Request, case_id: CaseId, exhibit_id: ExhibitId) -> Response:
    """Exhibit header for anyone on the case; contents, stills and timeline each by their API permission."""
    svc, user, _ = current(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "case.read")
    perms = perms_for(svc, user, c)
    ctx: dict[str, Any] = {"case": c, "exhibit": e, "perms": perms, "view": None, "timeline": None,
                           "metadata": None, "gallery": None, "chain": None}
    if perms["evidence_read"]:
        view = exhibit_view(svc.ev, c.ref, e.ref)
        for o in view["objects"]:
            o["object_id"] = object_id(o["bucket"], o["key"])
        ctx["view"], ctx["gallery"], ctx["chain"] = view, _gallery(view), view["chain"]
        ctx["metadata"] = exhibit_metadata(svc.ev, e)
        _record(request, svc, c, e, user, "accessed", what="exhibit page (objects, metadata, stills)")
        if perms["custody_read"]:
            ctx["timeline"] = _timeline(view["events"])
    elif perms["custody_read"]:
        chain = svc.ev.log.read(e.id)
        ctx["timeline"], ctx["chain"] = _timeline(chain.events), {"ok": chain.ok, "length": len(chain.events),
                                                                  "findings": [str(f) for f in chain.findings]}
    return render(request, "exhibit.html", **ctx)


def _record(request: Request, svc: Services, c: Case, e: Exhibit, user: User, action: str,
            objects: list[dict[str, Any]] | None = None, **params: Any) -> dict[str, Any]:
    return svc.ev.record(c, e, action, actor=actor(user), objects=objects,
                         parameters={"via": "portal", "request_id": getattr(request.state, "request_id", None),
                                     **params})


def _find_object(svc: Services, e: Exhibit, oid: str) -> Any:
    match = next((o for o in svc.ev.objects(svc.ev.log.events(e.id)) if object_id(o.bucket, o.key) == oid), None)
    if match is None:
        raise NotFoundError(f"object {oid} is not part of exhibit {e.id}")
    return match


@router.get("/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/view")
def view_object(request: Request, case_id: CaseId, exhibit_id: ExhibitId, object_id: ObjectId) -> Response:
    """Stills, thumbnails and contact sheets shown in the page, hash-checked before display.

    Showing image bytes hands over content, so it takes the API's download permission (auditors read the
    records but, as in the API, do not get content); the page view itself is the `accessed` custody event.
    """
    svc, user, _ = current(request)
    _c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.download")
    o = _find_object(svc, e, object_id)
    note(request, object=o.key)
    if o.role != "derived" or o.info.get("kind") not in INLINE_KINDS or o.size > INLINE_MAX:
        raise NotFoundError("only stills, thumbnails and contact sheets are shown inline; download the rest")
    data = svc.ev.store.get_bytes(o.bucket, o.key, o.version_id)
    if hashlib.sha256(data).hexdigest() != o.sha256:
        raise IntegrityError(f"{o.key} does not match its custody record; not shown (run `custody verify`)")
    ctype = o.info.get("content_type") or ("image/png" if data[:4] == b"\x89PNG" else "image/jpeg")
    return Response(data, media_type=ctype, headers={"Cache-Control": "private, no-store",
                                                     "Content-Disposition": "inline"})


@router.get("/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/download")
def download_object(request: Request, case_id: CaseId, exhibit_id: ExhibitId, object_id: ObjectId) -> Response:
    """Same rule and custody record as the API's download: a short-lived presigned URL, recorded."""
    svc, user, _ = current(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.download")
    o = _find_object(svc, e, object_id)
    ref = {"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "sha256": o.sha256, "size": o.size,
           "role": "reference"}
    url = presigned_download(svc.ev.store, o.bucket, o.key, o.version_id, DOWNLOAD_TTL, o.original_name,
                             o.info.get("content_type"))  # an attachment of a safe type, never rendered
    _record(request, svc, c, e, user, "downloaded", objects=[ref],
            expires_seconds=int(DOWNLOAD_TTL.total_seconds()))
    note(request, object=o.key)
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
