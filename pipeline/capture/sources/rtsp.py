"""RTSP / RTSPS cameras, read by ffmpeg's RTSP demuxer over TCP (interleaved RTP: no lost UDP packets)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..rtcp import CameraClock, measure_camera_clock
from . import register


def _netloc(host: str, port: int | None, user: str | None, password: str | None) -> str:
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    hostport = f"{host}:{port}" if port else host
    if user is None:
        return hostport
    return f"{user}:{password}@{hostport}" if password is not None else f"{user}@{hostport}"


class RtspSource:
    name = "rtsp"
    schemes = ("rtsp", "rtsps")

    def validate(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in self.schemes:
            raise ValueError(f"url must be rtsp:// or rtsps://, got scheme {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("url has no host")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("url has an invalid port") from None
        if parts.password is not None:
            raise ValueError("url contains a password; remove it and set password_env (the name of an environment "
                             "variable holding it) so the secret never lands in the inventory or custody record")
        return url

    def input_args(self, url: str, *, socket_timeout: float) -> tuple[str, dict[str, str]]:
        # `-timeout` is the RTSP demuxer's socket I/O timeout in microseconds in ffmpeg 5.x (it replaced
        # `-stimeout`). `-fpsprobesize 0`: stream copy never needs the frame rate, and guessing it holds the
        # first packets back ~1 s, which would delay noticing that a camera is back.
        return url, {"rtsp_transport": "tcp", "timeout": str(int(socket_timeout * 1_000_000)), "fpsprobesize": "0"}

    def redact(self, url: str) -> str:
        """rtsp://user:secret@host/x -> rtsp://user:***@host/x (user kept: it says which account recorded)."""
        parts = urlsplit(url)
        if parts.password is None:
            return url
        return urlunsplit(parts._replace(netloc=_netloc(parts.hostname or "", parts.port, parts.username, "***")))

    def with_credentials(self, url: str, username: str, password: str | None) -> str:
        parts = urlsplit(url)
        user = quote(username, safe="")
        pw = quote(password, safe="") if password is not None else None
        return urlunsplit(parts._replace(netloc=_netloc(parts.hostname or "", parts.port, user, pw)))

    def describe(self, url: str) -> dict[str, Any]:
        return {"source": self.name, "url": self.redact(url), "transport": "RTP over RTSP/TCP (interleaved)",
                "reader": "ffmpeg rtsp demuxer"}

    def measure_clock(self, url: str, timeout: float) -> CameraClock:
        """Optional capability: the camera's clock from RTCP sender reports (ClockUnavailable if not)."""
        return measure_camera_clock(url, timeout)


register(RtspSource())
