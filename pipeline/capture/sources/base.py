"""What a camera source must provide: the recorder and the inventory know cameras only through this."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class CameraSource(Protocol):
    """One kind of camera stream (RTSP, HTTP-MJPEG, ...), registered for the URL schemes it serves.

    Implementations are stateless; ffmpeg does the reading, so a source only says how to open the stream.
    Optional: `measure_clock(url, timeout) -> rtcp.CameraClock` where the stream carries the camera's clock
    (the recorder calls it once per connection and records the offset; raise rtcp.ClockUnavailable if not).
    """

    name: str
    schemes: tuple[str, ...]

    def validate(self, url: str) -> str:
        """Return the URL if a recorder can use it, else raise ValueError naming what is wrong (no secrets)."""
        ...

    def input_args(self, url: str, *, socket_timeout: float) -> tuple[str, dict[str, str]]:
        """ffmpeg input target and its input options (`-key value` before `-i`)."""
        ...

    def redact(self, url: str) -> str:
        """The URL with any secret replaced, fit for logs and the custody record."""
        ...

    def with_credentials(self, url: str, username: str, password: str | None) -> str:
        """The URL carrying these credentials (never store or log the result)."""
        ...

    def describe(self, url: str) -> dict[str, Any]:
        """How the stream is read, for the custody record (redacted URL, transport, ...)."""
        ...
