from __future__ import annotations

import pytest

import tests.fakes  # noqa: F401 - first: quiets third-party import-time warnings
from tests.fakes.proxy_keys import ProxyKeyServer


@pytest.fixture
def server() -> ProxyKeyServer:
    return ProxyKeyServer()
