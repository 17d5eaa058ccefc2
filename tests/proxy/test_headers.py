"""Many header fields cost the proxy providers' ``/refresh`` linear work, not quadratic.

Starlette's ``Headers`` looks a name up by scanning every field; copying it name by name
(``dict(request.headers)``) is one scan per field. Counted here: the scans one request
makes must not grow with the number of fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers

from tests.fakes.proxy_keys import ProxyKeyServer, unsigned_jwt
from tests.proxy.helpers import build, client, config

_SCANNING = ("__getitem__", "__contains__", "getlist")


def _scans_for(server: ProxyKeyServer, extra_fields: int, monkeypatch: pytest.MonkeyPatch) -> int:
    count = 0

    def counted(name: str) -> Any:
        original = getattr(Headers, name)

        def wrapper(self: Headers, *args: Any) -> Any:
            nonlocal count
            count += 1
            return original(self, *args)

        return wrapper

    headers = [
        ("X-Forwarded-User", "jane"),
        ("X-Forwarded-Email", "jane@example.com"),
        ("X-OAUTH2-PROXY-ID-TOKEN", f"Bearer {unsigned_jwt({'sub': 'jane'})}"),
        *((f"x-filler-{i}", "v") for i in range(extra_fields)),
    ]
    with client(build(server, config(requestLimits={"headerFields": 10_000}))) as http:
        with monkeypatch.context() as patch:
            for name in _SCANNING:
                patch.setattr(Headers, name, counted(name))
            response = http.get("/api/auth/oauth2Proxy/refresh", headers=headers)
    assert response.status_code == 200, response.text
    return count


def test_header_lookups_do_not_grow_with_the_number_of_fields(
    server: ProxyKeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    few = _scans_for(server, 10, monkeypatch)
    many = _scans_for(server, 2_000, monkeypatch)
    assert many == few, (few, many)
