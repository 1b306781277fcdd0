"""The FastAPI application: JSON API under /api/ (the site root is left for a later portal).

Two rules are enforced here rather than in each handler:
  * every /api/ request except /api/health is written to the access audit
    trail *before* its response starts — if the entry can't be stored the
    caller gets 503 instead of the data ("no audit, no access");
  * errors become JSON `{"detail": ...}` with a 4xx/503 status from the
    exception type, and never a stack trace;
  * no credential is kept: the audit entry's query string goes through the one
    redaction rule (`access.redact`), as do error details and log lines, so a
    token sent in the wrong place (`?access_token=cust_...`) is refused *and*
    not written down. Every response says `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import __version__
from pipeline.access.redact import install_log_redaction, redact_headers, redact_query, redact_text
from pipeline.api import admin, cameras, cases, media, recover, review
from pipeline.api.body_limit import BodyLimit
from pipeline.api.statuses import outcome, status_for
from pipeline.errors import (
    CustodyError,
)
from pipeline.settings import Settings

log = logging.getLogger(__name__)

UNAUDITED = ("/api/health", "/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect")

class AuditMiddleware:
    """Pure ASGI (no body buffering, so uploads stay streamed); see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path in UNAUDITED:
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        blocked = False

        async def send_audited(message: Message) -> None:
            nonlocal blocked
            if blocked:
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
                facts: dict[str, Any] = dict(state.get("audit") or {})
                client = scope.get("client")
                entry = {"request_id": rid, "method": scope.get("method"), "path": path,
                         "query": redact_query(scope.get("query_string") or b"")[:1000],
                         "status": status, "outcome": outcome(status),
                         "client": client[0] if client else None,
                         **_client_headers(scope), **facts}
                entry.setdefault("user", None)
                try:
                    await run_in_threadpool(_audit_trail(scope).write, entry)
                except Exception as exc:  # noqa: BLE001 - any failure to audit denies the access
                    log.error("audit write failed (%s); refusing request %s", type(exc).__name__, rid)
                    blocked = True
                    resp = JSONResponse({"detail": "access audit unavailable; request refused"}, status_code=503,
                                        headers={"X-Request-ID": rid})
                    await resp(scope, _no_receive, send)
                    return
                message.setdefault("headers", [])
                extra = [(b"x-request-id", rid.encode())]
                if not any(k.lower() == b"x-content-type-options" for k, _ in message["headers"]):
                    extra.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_audited(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            if not started:  # the outer error handler will answer 500; audit it here first
                entry = {"request_id": rid, "method": scope.get("method"), "path": path, "status": 500,
                         "outcome": "failed", **dict(state.get("audit") or {})}
                try:
                    await run_in_threadpool(_audit_trail(scope).write, entry)
                except Exception:  # noqa: BLE001 - the original error matters more
                    log.error("audit write failed for request %s", rid)
            raise


def _client_headers(scope: Scope) -> dict[str, str]:
    """The request headers worth keeping (who called, from where), through the one redaction rule."""
    wanted = {b"user-agent": "user_agent", b"referer": "referer", b"origin": "origin"}
    found = {wanted[k]: v.decode("latin-1")[:300] for k, v in scope.get("headers") or [] if k in wanted}
    return redact_headers(found)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _audit_trail(scope: Scope) -> Any:
    app = scope["app"]
    from pipeline.api.deps import Services

    svc = getattr(app.state, "services", None)
    if svc is None:
        svc = app.state.services = Services(app.state.settings)
    return svc.audit


def _error_response(request: Request, exc: Exception) -> JSONResponse:
    code = status_for(exc)
    if code == 500:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        detail = f"internal error ({type(exc).__name__}); request {getattr(request.state, 'request_id', '-')}"
    else:
        detail = redact_text(str(exc))
    from pipeline.api.deps import note

    note(request, reason=detail[:500])
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


def _invalid_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field and what is wrong, without echoing the input: FastAPI's own handler echoes it
    and fails to render an infinite or NaN number (`{"every_seconds": Infinity}` reset the connection)."""
    from pipeline.api.deps import note

    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    note(request, reason="; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)[:500])
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; S3 is contacted on the first request, not here."""
    install_log_redaction()
    app = FastAPI(title="custody API", version=__version__, openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None,
                  description="Field uploads, cases, exhibits, custody timelines, metadata, downloads and work "
                              "requests for the custody evidence store. Bearer tokens; every access is audited.")
    app.state.settings = settings
    app.state.services = None
    app.include_router(admin.router)
    app.include_router(cases.router)
    app.include_router(cameras.router)
    app.include_router(media.router)
    app.include_router(review.router)
    app.include_router(recover.router)
    from pipeline.web import router as portal_router  # the web portal at / (imported here: it uses the API)

    app.include_router(portal_router)

    @app.exception_handler(CustodyError)
    async def custody_error(request: Request, exc: CustodyError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid_response(request, exc)

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(request, exc)

    app.add_middleware(BodyLimit)  # inside the audit: a refused body is audited too
    app.add_middleware(AuditMiddleware)
    return app
