"""The portal's camera page: the API's camera status (`GET /api/cameras/status`) as a table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pipeline.api.cameras import cameras_for
from pipeline.web.routes import router
from pipeline.web.session import current, render


def _when(value: Any) -> str:
    """`2026-12-01 22:05:13 UTC` for an ISO time, '' for none."""
    try:
        return f"{datetime.fromisoformat(str(value).replace('Z', '+00:00')):%Y-%m-%d %H:%M:%S} UTC" if value else ""
    except ValueError:
        return str(value)


@router.get("/cameras")
def cameras_page(request: Request) -> Response:
    """Same rows, same permission (`custody.read`, assigned cases only for scoped roles) as the API."""
    svc, user, _ = current(request)
    status = cameras_for(request, svc, user)
    return render(request, "cameras.html", status=status, when=_when)
