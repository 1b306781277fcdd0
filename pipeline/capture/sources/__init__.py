"""Camera sources by URL scheme: every module in this package registers its source at import.

Adding a kind of camera (HTTP-MJPEG, ONVIF, ...) is one new module here defining a `CameraSource` and calling
`register()`; the recorder, the ffmpeg command builder and the inventory's URL check find it by scheme.
"""

from __future__ import annotations

import importlib
import pkgutil
from urllib.parse import urlsplit

from ..errors import SourceError
from .base import CameraSource

_REGISTRY: dict[str, CameraSource] = {}


def register(source: CameraSource) -> CameraSource:
    """Make `source` the handler of its schemes (a later registration for a scheme replaces the earlier)."""
    if not isinstance(source, CameraSource):
        raise TypeError(f"{source!r} does not implement CameraSource")
    for scheme in source.schemes:
        _REGISTRY[scheme.lower()] = source
    return source


def schemes() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def source_for(url: str) -> CameraSource:
    """The source registered for the URL's scheme; SourceError (exit 2) naming the schemes we do serve."""
    scheme = urlsplit(url).scheme.lower()
    try:
        return _REGISTRY[scheme]
    except KeyError:
        have = ", ".join(f"{s}://" for s in schemes())
        raise SourceError(f"no camera source for URL scheme {scheme + '://' if scheme else '(none)'}; "
                          f"supported: {have}") from None


def validate_url(url: str) -> str:
    """ValueError with a message for the inventory when no source accepts the URL."""
    try:
        source = source_for(url)
    except SourceError as exc:
        raise ValueError(str(exc)) from None
    return source.validate(url)


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")


_discover()

__all__ = ["CameraSource", "register", "schemes", "source_for", "validate_url"]
