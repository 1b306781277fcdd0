"""Portal plumbing: cookie sessions, CSRF, access audit and error pages.

The browser never holds the API token in script-readable form: signing in
swaps it for a random server-side session id in an HttpOnly, SameSite=Strict
cookie. Every request re-authenticates the token (so a revoked token or
disabled user is out at once) and every state-changing request must carry the
session's CSRF token (hidden form field or `X-CSRF-Token` header).

Portal pages live outside /api/, so the API's audit middleware does not see
them; `PortalRoute` writes the same kind of access-audit entry for each portal
request before answering, and refuses (503) if it cannot ("no audit, no
access"), exactly as the API does.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request, Response
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from pipeline.access.auth import AccessDenied, Unauthenticated, User
from pipeline.access.redact import redact_query, redact_text
from pipeline.api.deps import Services, note, services
from pipeline.api.statuses import outcome, status_for
from pipeline.errors import CustodyError, UsageError

log = logging.getLogger(__name__)

COOKIE = "custody_session"
PRE_COOKIE = "custody_signin"  # double-submit CSRF token for the sign-in form (before any session exists)
IDLE_SECONDS = 30 * 60
MAX_SECONDS = 12 * 3600

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass
class Session:
    """One signed-in browser: the token stays on the server, the browser only knows `sid`."""

    sid: str
    token: str
    csrf: str
    user_name: str
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)


class SessionStore:
    """In-memory sessions (one API process; a restart signs everyone out, which is the safe failure)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Session] = {}

    def create(self, token: str, user: User) -> Session:
        s = Session(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32), user.name)
        with self._lock:
            self._items[s.sid] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            s = self._items.get(sid)
            if s is None:
                return None
            if now - s.seen > IDLE_SECONDS or now - s.created > MAX_SECONDS:
                del self._items[sid]
                return None
            s.seen = now
            return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._items.pop(sid or "", None)


def session_store(request: Request) -> SessionStore:
    """One store per app instance (created lazily, like the API's services)."""
    st = getattr(request.app.state, "portal_sessions", None)
    if st is None:
        st = request.app.state.portal_sessions = SessionStore()
    return st


class SignInRequired(Unauthenticated):
    """No valid portal session: pages redirect to sign-in, JSON endpoints answer 401."""


def current(request: Request) -> tuple[Services, User, Session]:
    """The signed-in user, re-authenticated against the token store on every request."""
    svc = services(request)
    sess = session_store(request).get(request.cookies.get(COOKIE))
    if sess is None:
        raise SignInRequired("not signed in")
    try:
        user = svc.auth.authenticate(sess.token)
    except Unauthenticated:
        session_store(request).drop(sess.sid)
        raise SignInRequired("session token no longer valid") from None
    note(request, user=user.name, role=user.role)
    request.state.portal_user = user
    request.state.portal_session = sess
    return svc, user, sess


def check_csrf(request: Request, sess: Session, supplied: str | None) -> None:
    """Reject state-changing requests that do not carry this session's CSRF token."""
    supplied = supplied or request.headers.get("x-csrf-token")
    if not supplied or not secrets.compare_digest(supplied, sess.csrf):
        note(request, reason="CSRF token missing or wrong")
        raise AccessDenied("CSRF token missing or wrong; reload the page and try again")
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        note(request, reason=f"cross-origin request from {origin[:100]}")
        raise AccessDenied("cross-origin request refused")


async def form_data(request: Request) -> dict[str, str]:
    """URL-encoded form fields (the portal's forms have no file fields, so no multipart parser is needed)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > 64 * 1024:
            raise UsageError("form too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in fields.items()}


FormDep = Annotated[dict[str, str], Depends(form_data)]


def set_session_cookie(response: Response, request: Request, sid: str) -> None:
    """HttpOnly (no script can read it), SameSite=Strict (no cross-site request carries it), Secure on https."""
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/", max_age=MAX_SECONDS)


def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """A template with the user and CSRF token; pages are never cached (they show evidence)."""
    user = getattr(request.state, "portal_user", None)
    sess = getattr(request.state, "portal_session", None)
    resp = templates.TemplateResponse(request, name, {"user": user, "csrf": sess.csrf if sess else "", **ctx},
                                      status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.method in ("PUT", "DELETE")


def error_response(request: Request, exc: Exception) -> Response:
    """HTML error page (or JSON for script calls) with the API's status mapping; never a traceback."""

    if isinstance(exc, SignInRequired):
        if _wants_json(request):
            return JSONResponse({"detail": "sign in again"}, status_code=401)
        return RedirectResponse("/signin", status_code=303)
    if isinstance(exc, RequestValidationError):
        code, detail = (404 if request.method == "GET" else 400), "the address or form is not valid"
    elif isinstance(exc, HTTPException):
        code, detail = exc.status_code, str(exc.detail)
    else:
        code = status_for(exc)
        detail = redact_text(str(exc)) if code != 500 else \
            f"internal error; request {getattr(request.state, 'request_id', '-')}"
        if code == 500:
            log.exception("portal error in %s %s", request.method, request.url.path)
    note(request, reason=redact_text(detail)[:500])
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=code)
    titles = {401: "Sign-in needed", 403: "Access refused", 404: "Not found", 409: "Conflict",
              422: "Integrity problem", 503: "Service unavailable"}
    return render(request, "error.html", status_code=code, code=code, title=titles.get(code, "Error"),
                  detail=detail)


class PortalRoute(APIRoute):
    """A route whose requests are written to the access audit trail before the answer leaves."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            rid = uuid.uuid4().hex
            request.state.request_id = rid
            try:
                response = await inner(request)
            except (CustodyError, HTTPException, RequestValidationError) as exc:
                response = error_response(request, exc)
            except Exception as exc:  # noqa: BLE001 - any other failure is a 500 page, still audited
                response = error_response(request, exc)
            facts: dict[str, Any] = dict(getattr(request.state, "audit", None) or {})
            client = request.client
            entry = {"request_id": rid, "method": request.method, "path": request.url.path,
                     "query": redact_query(request.url.query)[:1000], "status": response.status_code,
                     "outcome": outcome(response.status_code), "client": client.host if client else None,
                     "via": "portal", **facts}
            entry.setdefault("user", None)
            try:
                await run_in_threadpool(services(request).audit.write, entry)
            except Exception as exc:  # noqa: BLE001 - no audit, no access
                log.error("audit write failed (%s); refusing portal request %s", type(exc).__name__, rid)
                response = HTMLResponse("<h1>Service unavailable</h1><p>The access audit trail cannot be written, "
                                        "so the request was refused.</p>", status_code=503)
            response.headers["X-Request-ID"] = rid
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
                "form-action 'self'")
            return response

        return handler
