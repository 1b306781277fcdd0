"""The camera's own clock, from the RTCP sender reports of a short parallel RTSP session.

An RTCP sender report (SR) carries the camera's wall clock (NTP format) for an RTP timestamp. ffmpeg 5.1 reads
these for the recording but keeps the result internal (AVFormatContext.start_time_realtime; nothing on its CLI),
so the recorder asks the camera directly: DESCRIBE, SETUP (RTP interleaved over this TCP connection), PLAY,
wait for the first SR, TEARDOWN. offset = SR's NTP time - our time of receipt: how far the camera's clock is
ahead of ours, including the (LAN: ~ms) transit time. Digest and Basic authentication are supported; anything
else, or a camera that sends no SR within the timeout, gives ClockUnavailable with the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

NTP_UNIX_OFFSET = 2208988800


class ClockUnavailable(Exception):  # noqa: N818 - an outcome, not a failure: recording never depends on it
    """No camera clock reading (the message says why); recording is unaffected."""


@dataclass(frozen=True)
class CameraClock:
    offset: float  # camera clock minus receiving clock, seconds (transit time included)
    received: float  # our wall time when the sender report arrived

    def describe(self) -> str:
        return (f"camera clock (RTCP sender report on a parallel RTSP session): camera - receiver = "
                f"{self.offset * 1000:+.0f} ms, transit time included")


class _Session:
    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else ""
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        self.url = urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))
        raw = socket.create_connection((host, parts.port or (322 if parts.scheme == "rtsps" else 554)), timeout)
        self.sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host) \
            if parts.scheme == "rtsps" else raw
        self.buf = b""
        self.cseq = 0
        self.auth: dict[str, str] | None = None
        self.session = ""

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ClockUnavailable("camera closed the RTSP connection")
        self.buf += chunk

    def _message(self) -> tuple[list[str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        n = int(self._header(lines, "content-length") or 0)
        while len(self.buf) < n:
            self._recv()
        body, self.buf = self.buf[:n], self.buf[n:]
        return lines, body

    @staticmethod
    def _header(lines: list[str], name: str) -> str | None:
        return next((ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith(name + ":")), None)

    def _authorization(self, method: str, uri: str) -> str:
        a = self.auth or {}
        if a.get("scheme") == "basic":
            import base64

            return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        ha1 = hashlib.md5(f"{self.user}:{a['realm']}:{self.password}".encode(), usedforsecurity=False).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode(), usedforsecurity=False).hexdigest()
        fields = f'username="{self.user}", realm="{a["realm"]}", nonce="{a["nonce"]}", uri="{uri}"'
        if "auth" in a.get("qop", "").split(","):
            cnonce, nc = os.urandom(8).hex(), "00000001"
            resp = hashlib.md5(f"{ha1}:{a['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode(),
                               usedforsecurity=False).hexdigest()
            return f'Digest {fields}, response="{resp}", qop=auth, nc={nc}, cnonce="{cnonce}"'
        resp = hashlib.md5(f"{ha1}:{a['nonce']}:{ha2}".encode(), usedforsecurity=False).hexdigest()
        return f'Digest {fields}, response="{resp}"'

    def request(self, method: str, uri: str, headers: str = "") -> tuple[list[str], bytes]:
        for _ in range(2):
            self.cseq += 1
            extra = headers + (f"Session: {self.session}\r\n" if self.session else "")
            if self.auth:
                extra += f"Authorization: {self._authorization(method, uri)}\r\n"
            self.sock.sendall(f"{method} {uri} RTSP/1.0\r\nCSeq: {self.cseq}\r\nUser-Agent: custody-clock\r\n"
                              f"{extra}\r\n".encode())
            lines, body = self._message()
            status = lines[0].split(" ", 2)
            if len(status) > 1 and status[1] == "401" and self.auth is None and self.user:
                challenge = self._header(lines, "www-authenticate") or ""
                scheme = challenge.split(" ", 1)[0].lower()
                self.auth = {"scheme": scheme, **dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))}
                if scheme not in ("digest", "basic"):
                    raise ClockUnavailable(f"camera asks for {scheme} authentication, which the clock probe lacks")
                continue
            if len(status) < 2 or status[1] != "200":
                raise ClockUnavailable(f"{method} answered {lines[0]!r}")
            return lines, body
        raise ClockUnavailable(f"{method}: authentication refused")

    def first_sender_report(self, rtcp_channel: int, deadline: float) -> CameraClock:
        while time.time() < deadline:
            while not self.buf:
                self._recv()
            if self.buf[:1] != b"$":  # an RTSP message from the server between data frames
                self._message()
                continue
            while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">H", self.buf[2:4])[0]:
                self._recv()
            channel, n = self.buf[1], struct.unpack(">H", self.buf[2:4])[0]
            pkt, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
            now = time.time()
            if channel == rtcp_channel and len(pkt) >= 20 and pkt[1] == 200:
                secs, frac = struct.unpack(">II", pkt[8:16])
                return CameraClock(secs - NTP_UNIX_OFFSET + frac / 2**32 - now, now)
        raise ClockUnavailable("no RTCP sender report before the timeout")

    def close(self) -> None:
        self.sock.close()


def measure_camera_clock(url: str, timeout: float = 10.0) -> CameraClock:
    """One reading of the camera's clock; ClockUnavailable (with the reason) if the camera does not give it."""
    deadline = time.time() + timeout
    try:
        s = _Session(url, timeout)
    except OSError as exc:
        raise ClockUnavailable(f"cannot connect: {exc}") from None
    try:
        s.sock.settimeout(max(0.1, deadline - time.time()))
        lines, sdp = s.request("DESCRIBE", s.url, "Accept: application/sdp\r\n")
        base = s._header(lines, "content-base") or s.url
        media = sdp.decode(errors="replace").split("\r\nm=")
        track = next((m for m in media[1:] if m.startswith("video")), media[1] if len(media) > 1 else "")
        control = next((ln[len("a=control:"):].strip() for ln in track.split("\r\n") if ln.startswith("a=control:")),
                       "")
        target = control if control.startswith("rtsp") else urljoin(base if base.endswith("/") else base + "/",
                                                                    control) if control else base
        lines, _ = s.request("SETUP", target, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
        s.session = (s._header(lines, "session") or "").split(";")[0]
        transport = s._header(lines, "transport") or ""
        m = re.search(r"interleaved=(\d+)-(\d+)", transport)
        s.request("PLAY", base)  # no Range: a live camera has nothing to seek to
        reading = s.first_sender_report(int(m.group(2)) if m else 1, deadline)
        try:
            s.request("TEARDOWN", base)
        except (OSError, ClockUnavailable):
            pass  # we have the reading; the camera drops the session on close anyway
        return reading
    except (OSError, ValueError, IndexError, struct.error) as exc:
        raise ClockUnavailable(f"RTSP exchange failed: {type(exc).__name__}: {exc}") from None
    finally:
        s.close()
