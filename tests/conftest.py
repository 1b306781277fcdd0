"""Shared fixtures: one real embedded S3 server for the whole run, and one Prefect server for the tests that
ask for it (`prefect_api`: `custody stack up` starts it, ~20 s, once per run).

Each test that needs isolation gets its own case reference rather than its
own server, which keeps the suite fast on 2 cores. A test starting a home of
its own passes `stack up --no-prefect` unless it needs Prefect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.cli.finishing import settle

ROOT = Path(__file__).resolve().parent.parent
CUSTODY = str(Path(sys.executable).parent / "custody")


class Cli:
    """Runs the real `custody` console script against one CUSTODY_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "CUSTODY_HOME": str(home), "CUSTODY_ACTOR": "pytest",
                    "PREFECT_HOME": str(home / "prefect")}

    def run(self, *args: str, check: bool = True, timeout: float = 300, input: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([CUSTODY, *args], env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, input=input)
        # a served command finishes its transparency-log round after returning: what the test reads next
        # straight from the store must already show it, as any later command would see it
        assert settle(self.home / "stack"), "a served command still finishing its log round after 30 s"
        if check and proc.returncode != 0:
            raise AssertionError(f"custody {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str, **kw) -> object:  # type: ignore[no-untyped-def]
        proc = self.run(*args, "--json", **kw)
        return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("custody-home")
    c = Cli(home)
    c.run("stack", "up", "--no-prefect")
    yield c
    from pipeline.custody.tlogrounds import finish_rounds

    finish_rounds()  # in-process appenders' timer rounds end here, not against a stopped store
    c.run("stack", "down", check=False)


@pytest.fixture(scope="session")
def prefect_api(cli: Cli) -> str:
    """The session home's Prefect API URL; its server is shared by every test that needs one."""
    info = cli.json("stack", "up", timeout=240)
    url = info["prefect_api_url"]  # type: ignore[index]
    assert url, info
    return url


@pytest.fixture(scope="session")
def stack_status(cli: Cli) -> dict:
    return cli.json("stack", "status", "--show-secrets")  # type: ignore[return-value]


@pytest.fixture
def case_ref(cli: Cli) -> str:
    ref = f"OP-T/{uuid.uuid4().hex[:8]}"
    cli.run("case", "create", "--ref", ref)
    return ref


@pytest.fixture(scope="session")
def settings_env(cli: Cli) -> Iterator[None]:
    """Point in-process library calls at the test home."""
    old = {k: os.environ.get(k) for k in ("CUSTODY_HOME", "CUSTODY_ACTOR")}
    os.environ["CUSTODY_HOME"] = str(cli.home)
    os.environ["CUSTODY_ACTOR"] = "pytest"  # in-process calls need a named actor as the CLI does
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def evidence(settings_env: None):  # type: ignore[no-untyped-def]
    from pipeline.evidence import Evidence
    from pipeline.settings import load_settings

    ev = Evidence(load_settings())
    yield ev
    ev.flush()  # what tests appended in-process reaches the log, as at the end of a command


@pytest.fixture(scope="session")
def raw_client(stack_status: dict):  # type: ignore[no-untyped-def]
    """A plain minio client with the stack's keys: the 'attacker with S3 access' in tamper tests."""
    from minio import Minio

    ep = stack_status["endpoint"].removeprefix("http://")
    return Minio(ep, stack_status["access_key"], stack_status["secret_key"], secure=False)


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `cond` until it is true; fail naming `what` after `timeout` seconds (no sleeps as synchronisation)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
