"""A bound on request bodies the API buffers: JSON documents, not evidence.

FastAPI reads a body whole before authentication runs, so without a bound anyone who can reach the port could
make the server hold gigabytes (a 50 MB JSON note was read in full before its 422). Uploads stream to the store
and are exempt; every other /api/ body is refused with 413 past MAX_BODY, by its declared length when it has one
and by counting when it is chunked. Pure ASGI, inside the audit middleware, so refusals are audited too.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 1024 * 1024  # the largest JSON request (a bundle of 500 exhibits, 10,000 chosen times) is ~300 KB
STREAMED = re.compile(r"^/api/cases/[^/]+/exhibits/[^/]+/uploads$")  # footage: streamed to the store


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or STREAMED.match(path):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, send)
            return
        # read the body here (it would be read whole anyway) and hand it on, or refuse once it passes the limit
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        from starlette.requests import Request

        from pipeline.api.deps import note

        detail = f"request body over {self.limit // 1024} KiB: the API takes JSON documents; footage goes to /uploads"
        note(Request(scope), reason=detail)  # the audit entry's reason (Request.state is the scope's state)

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await JSONResponse({"detail": detail}, status_code=413)(scope, no_body, send)
