"""Evidence content over HTTP: one endpoint for the player, the portal's images and every download.

`GET /api/cases/{case}/exhibits/{exhibit}/objects/{object}/content` takes a bearer token or the portal's
session cookie, checks `evidence.download` on the case (the same rule as the API's download), and streams
the object version the custody record names, in bounded memory:
- `Range` requests get 206 with `Content-Range` (one range; several or an unreadable one: the whole object),
  `Accept-Ranges: bytes`, an `ETag` of the recorded SHA-256; the version is pinned, so every range comes from
  the bytes the record hashed;
- a whole-object answer is hash-checked: small objects before sending, large ones while streaming with the
  last chunk held back until the SHA-256 matches, so a mismatch ends the transfer short and the client
  sees a failed download, never a complete-looking wrong file;
- shown inline only for review copies and clips (video/mp4) and stills, thumbnails and contact sheets
  (PNG/JPEG, checked by their first bytes); everything else is `application/octet-stream` with
  `Content-Disposition: attachment` and a sanitised file name; `X-Content-Type-Options: nosniff` always.
Every request is in the access audit trail (the API middleware); a download of a whole object (or of its
first bytes) is a `downloaded` custody event; inline viewing makes the day's `reviewed` event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from pipeline.access.auth import Unauthenticated, User
from pipeline.api.deps import CASE_ID, EXHIBIT_ID, OBJECT_ID, Services, actor, bearer, exhibit_for, note, services
from pipeline.errors import IntegrityError, NotFoundError
from pipeline.evidence import ExhibitObject
from pipeline.review.objects import checked_chain, find_object
from pipeline.review.viewing import note_view

router = APIRouter(prefix="/api")
CHUNK = 1024 * 1024
WHOLE_MAX = 16 * 1024 * 1024  # read whole (and checked) before sending
INLINE_VIDEO = ("review_copy", "clip")
INLINE_IMAGE = ("still", "thumbnail", "contact_sheet")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def caller(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> User:
    """The bearer token's user, or the portal session's (re-authenticated against the token store)."""
    svc = services(request)
    if creds is not None:
        user = svc.auth.authenticate(creds.credentials)
        via = "api"
    else:
        from pipeline.web.session import COOKIE, session_store  # the portal's sessions (imported at call time)

        sess = session_store(request).get(request.cookies.get(COOKIE))
        if sess is None:
            raise Unauthenticated("no bearer token and no portal session")
        user = svc.auth.authenticate(sess.token)
        request.state.portal_session = sess
        via = "portal"
    note(request, user=user.name, role=user.role, via=via)
    request.state.caller_via = via
    return user


CallerDep = Annotated[User, Depends(caller)]


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) byte of a single satisfiable range; None: send everything; "unsatisfiable": 416 (pure)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or another unit: RFC 9110 lets us answer with the whole object
    if not m.group(1):  # suffix: the last n bytes
        n = int(m.group(2))
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


def safe_filename(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "evidence"
    return stem[:120]


def presentation(obj: ExhibitObject, head: bytes | None) -> tuple[str, bool]:
    """(Content-Type, inline?) from the custody record's kind and, for images, the first bytes."""
    kind = str(obj.info.get("kind") or "")
    recorded = str((obj.info.get("info") or {}).get("content_type") or obj.info.get("content_type") or "")
    if obj.role == "derived" and kind in INLINE_VIDEO and recorded == "video/mp4":
        return "video/mp4", True
    if obj.role == "derived" and kind in INLINE_IMAGE and head is not None:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return "image/png", True
        if head.startswith(b"\xff\xd8\xff"):
            return "image/jpeg", True
    return "application/octet-stream", False


def _checked_stream(svc: Services, obj: ExhibitObject) -> Iterator[bytes]:
    """The whole object with the last chunk held back until its SHA-256 equals the record."""
    h = hashlib.sha256()
    held: bytes | None = None
    for chunk in svc.ev.store.stream_object(obj.bucket, obj.key, obj.version_id, CHUNK):
        h.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if h.hexdigest() != obj.sha256:
        raise IntegrityError(f"{obj.key} does not match its custody record; transfer ended short")
    if held is not None:
        yield held


CONTENT = "/cases/{case_id}/exhibits/{exhibit_id}/objects/{object_id}/content"


@router.get(CONTENT, summary="An object's bytes: ranges for the player, inline only for review media, else attachment",
            response_class=Response)
def content(request: Request, user: CallerDep, case_id: Annotated[str, Path(pattern=CASE_ID)],
            exhibit_id: Annotated[str, Path(pattern=EXHIBIT_ID)],
            object_id: Annotated[str, Path(pattern=OBJECT_ID)]) -> Response:
    svc = services(request)
    c, e = exhibit_for(request, svc, user, case_id, exhibit_id, "evidence.download")
    chain = checked_chain(svc.ev, e.id)
    obj = find_object(svc.ev, chain.events, object_id)
    if obj is None:
        raise NotFoundError(f"object {object_id} is not part of exhibit {e.id}")
    small = obj.size <= WHOLE_MAX
    whole = svc.ev.store.get_bytes(obj.bucket, obj.key, obj.version_id) if small else None
    if whole is not None and hashlib.sha256(whole).hexdigest() != obj.sha256:
        raise IntegrityError(f"{obj.key} does not match its custody record; not sent (run `custody verify`)")
    ctype, inline = presentation(obj, whole[:16] if whole is not None else None)
    rng = parse_range(request.headers.get("range"), obj.size)
    if_range = request.headers.get("if-range")
    if if_range and if_range.strip() != f'"{obj.sha256}"':
        rng = None
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{obj.sha256}"', "Cache-Control": "private, no-store",
               "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
               "Content-Disposition": "inline" if inline else
               f'attachment; filename="{safe_filename(obj.original_name or obj.key.rsplit("/", 1)[-1])}"'}
    note(request, object=obj.key, sha256=obj.sha256, range=request.headers.get("range"), inline=inline)
    if rng == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{obj.size}"})
    first, last = rng if isinstance(rng, tuple) else (0, obj.size - 1)
    _custody(request, svc, c, e, user, obj, inline, first, chain.events)
    length = max(0, last - first + 1)
    status = 206 if isinstance(rng, tuple) else 200
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{obj.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=ctype)
    if whole is not None:
        return Response(whole[first:last + 1], status_code=status, headers=headers, media_type=ctype)
    if status == 206:
        body: Iterator[bytes] = svc.ev.store.stream_object(obj.bucket, obj.key, obj.version_id, CHUNK, first, length)
    else:
        body = _checked_stream(svc, obj)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=ctype)


router.add_api_route(CONTENT, content, methods=["HEAD"], include_in_schema=False)


def _custody(request: Request, svc: Services, c: Any, e: Any, user: User, obj: ExhibitObject, inline: bool,
             first: int, events: list[dict[str, Any]]) -> None:
    via = getattr(request.state, "caller_via", "api")
    rid = getattr(request.state, "request_id", None)
    if inline:
        note_view(svc.ev, c, e, actor(user), what=f"{obj.info.get('kind')} {obj.original_name or ''}".strip(),
                  via=via, request_id=rid, events=events)
    elif first == 0 and request.method == "GET":
        ref = {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "sha256": obj.sha256,
               "size": obj.size, "role": "reference"}
        svc.ev.record(c, e, "downloaded", actor=actor(user), objects=[ref],
                      parameters={"via": via, "request_id": rid, "how": "content endpoint (streamed, hash-checked)"})
