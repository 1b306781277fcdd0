"""Property-based run of the OpenAPI spec against the live server: no input may cause a server error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import Cli
from tests.test_api import ApiServer, add_user


@pytest.fixture(scope="module")
def admin_server(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    srv = ApiServer(cli, tmp_path_factory.mktemp("st") / "serve.log")
    _name, token = add_user(cli, "admin")
    yield srv, token
    srv.stop()


@pytest.fixture(scope="module")
def api_schema(admin_server: tuple[ApiServer, str]) -> Any:
    srv, _token = admin_server
    return schemathesis.openapi.from_url(f"{srv.url}/api/openapi.json")


def _operations() -> list[tuple[str, str]]:
    """Every operation in the spec, read from the app itself so each gets its own test id."""
    from pipeline.api import create_app

    spec = create_app().openapi()
    return [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_server_errors(api_schema: Any, admin_server: tuple[ApiServer, str], method: str, path: str) -> None:
    srv, token = admin_server
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=srv.url, headers={"Authorization": f"Bearer {token}"},
                               checks=[not_a_server_error], timeout=60)

    run()
