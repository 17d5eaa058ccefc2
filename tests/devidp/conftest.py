"""The development identity provider's tests run against this server as ``make run``
serves it (the embedded default config, development mode), on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cli_server import CliServer, default_config
from tests.support.oidc_provider import free_port


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliServer]:
    port = free_port()
    server = CliServer(
        default_config(port),
        tmp_path_factory.mktemp("firstrun"),
        port=port,
        development=True,
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
