"""`custody serve`: the HTTP API and portal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.output import say
from pipeline.errors import UsageError


def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535)] = 8700,
          certfile: Annotated[Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM).")] = None,
          keyfile: Annotated[Path | None, typer.Option("--tls-key", help="TLS private key (PEM).")] = None,
          log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning") -> None:
    """Run the HTTP API (JSON under /api/, OpenAPI at /api/openapi.json)."""
    import logging

    import uvicorn

    from pipeline.access.redact import configure_logging
    from pipeline.api import create_app
    from pipeline.settings import is_loopback, load_settings

    if not is_loopback(host) and not (certfile and keyfile):
        raise UsageError(f"refusing to serve on {host} without TLS: bearer tokens and evidence would cross the "
                         "network in clear; give --tls-cert and --tls-key (or listen on 127.0.0.1 behind a proxy)")
    settings = load_settings()
    say(f"custody API on {'https' if certfile else 'http'}://{host}:{port}/api/ (OpenAPI: /api/openapi.json)")
    # every log line (uvicorn's access log, which shows query strings, included) passes one redacting handler
    configure_logging(logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    # bounded graceful shutdown: idle keep-alive clients must not hold a stopping server open
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                log_config=None,
                ssl_certfile=str(certfile) if certfile else None, ssl_keyfile=str(keyfile) if keyfile else None)



def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
