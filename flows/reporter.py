"""Report recordings started outside Prefect's engine (`cameras run`, `cameras serve`) as `camera_ingest` flow runs.

Importing Prefect costs seconds and starting its server ~20 s, so neither happens before ffmpeg runs: the
reporter connects in the background (starting this home's server if there is none and none is configured)
and each run is reported once it can be; a run that ends before that is still fully in custody.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from pipeline.errors import InfrastructureError
from pipeline.ops.prefect import apply_prefect_env, healthy, reachable_api_url, start_prefect
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.capture.ingest import IngestRun

log = logging.getLogger(__name__)


def check_configured_server(settings: Settings) -> None:
    """A Prefect server named in settings is not ours to start: refuse to serve without it (exit 3)."""
    url = settings.prefect_api_url
    if url and not healthy(url):
        raise InfrastructureError(f"the Prefect server configured for this home ({url}) is not answering; start "
                                  "it, or record without reporting: `custody cameras serve --no-prefect`")


class PrefectReporter:
    """Connects once (in the background with `background=True`), then reports each run in its own thread."""

    def __init__(self, settings: Settings, *, start_server: bool) -> None:
        self.settings, self.start_server = settings, start_server
        self.ready = threading.Event()
        self.failed: str | None = None
        self.api_url: str | None = None
        self._threads: list[threading.Thread] = []

    def connect(self, background: bool = False) -> None:
        if background:
            threading.Thread(target=self._connect, name="prefect-connect", daemon=True).start()
        else:
            self._connect()

    def _connect(self) -> None:
        try:
            url = reachable_api_url(self.settings)
            if url is None and self.start_server and not self.settings.prefect_api_url:
                log.info("no Prefect server for this home: starting the stack's (10-25 s; it stays up, "
                         "`custody stack down` stops it); recording goes on")
                url = start_prefect(self.settings)
            if url is None:
                raise InfrastructureError("no Prefect server for this home (`custody stack up` starts one)")
            os.environ["PREFECT_API_URL"] = url
            apply_prefect_env(self.settings)
            import flows.camera_ingest  # noqa: F401 - the seconds-long Prefect import, done once, off the clock

            self.api_url = url
            log.info("reporting runs to Prefect at %s", url)
        except Exception as exc:  # noqa: BLE001 - reporting is optional, recording is not
            self.failed = str(exc)
            log.warning("runs are recorded but not reported to Prefect: %s", exc)
        finally:
            self.ready.set()

    def report(self, run: IngestRun, *, name: str, inventory: str | None = None, url: str | None = None,
               segment_seconds: float = 10.0, stall_timeout: float = 10.0, wait: bool = False) -> bool | None:
        """Report `run` as a flow run (waits for the connection, then for the run's end with `wait`)."""
        def go() -> bool:
            self.ready.wait()
            if self.failed is not None:
                return False
            from flows.camera_ingest import report_run

            return report_run(run, name=name, inventory=inventory, url=url, segment_seconds=segment_seconds,
                              stall_timeout=stall_timeout)

        if wait:
            return go()
        t = threading.Thread(target=go, name=f"prefect-report-{run.camera}", daemon=True)
        self._threads.append(t)
        t.start()
        return None

    def join(self, timeout: float = 60.0) -> None:
        for t in self._threads:
            t.join(timeout)
