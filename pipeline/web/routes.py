"""Server-rendered portal pages: sign-in, cases, case (exhibits side by side on the clock), object links.

Every decision goes through the API's own functions (`case_for`,
`exhibit_for`, `AuthStore.allowed`), so a page shows exactly what the caller
could fetch from the API and a refusal here is the same refusal, audited.
"""

from __future__ import annotations

import secrets
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from pipeline.access.auth import Unauthenticated
from pipeline.api.cases import list_cases
from pipeline.api.deps import CASE_ID, EXHIBIT_ID, OBJECT_ID, case_for, note, services
from pipeline.errors import NotFoundError
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
    perms = perms_for(svc, user, c)
    lanes = []
    if perms["evidence_read"]:  # the case's exhibits side by side on one clock (cameras and timed uploads)
        from pipeline.review.objects import checked_chain
        from pipeline.review.timeline import build_timeline

        for e in exhibits:
            tl = build_timeline({**e.__dict__}, checked_chain(svc.ev, e.id).events)
            if tl["start_us"] is not None:
                lanes.append({"exhibit": e, "coverage": tl["coverage"], "kind": tl["kind"],
                              "cameras": tl["cameras"], "summary": tl["summary"]})
    span = ([min(x["start_us"] for lane in lanes for x in lane["coverage"]),
             max(x["end_us"] for lane in lanes for x in lane["coverage"])] if lanes and any(
                 lane["coverage"] for lane in lanes) else None)
    return render(request, "case.html", case=c, exhibits=exhibits, perms=perms, lanes=lanes, span=span)


# ---- objects: the browser always fetches content from the API's content endpoint ----------------
def content_url(case_id: str, exhibit_id: str, oid: str) -> str:
    """Where the browser gets an object's bytes (authorised, audited, ranges; never a presigned S3 URL)."""
    return f"/api/cases/{case_id}/exhibits/{exhibit_id}/objects/{oid}/content"


@router.get("/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/view")
@router.get("/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/download")
def object_redirect(request: Request, case_id: CaseId, exhibit_id: ExhibitId, object_id: ObjectId) -> Response:
    """Old portal links: the content endpoint decides inline or attachment and records the download."""
    note(request, object_id=object_id)
    return RedirectResponse(content_url(case_id, exhibit_id, object_id), status_code=303,
                            headers={"Cache-Control": "no-store"})
