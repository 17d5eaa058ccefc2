"""Fakes of real services (Auth0, Bitbucket, OpenShift, ...) in front of ``FakeIdP``.

A ``ServiceFake`` is a callable ``httpx2.Request -> httpx2.Response`` for
``httpx2.MockTransport``, like ``FakeIdP``. It speaks one service's wire format:

- its OAuth endpoints (``OAUTH_PATHS``: the service's own paths) are forwarded to the
  wrapped ``FakeIdP`` at that fake's generic paths, so codes, PKCE, client authentication,
  refresh rotation, ``idp.requests`` and ``idp.fail("token", ...)`` all apply; token
  responses come back reshaped the way the service answers (``shape_token``), and their
  access tokens are remembered as valid;
- everything else is the service's API, answered by the subclass's ``serve_<route>``
  methods (``route`` maps a request to a route name) from those access tokens.

Knobs: ``fail(route, mode, times=None)`` on an API route, with ``mode`` ``"5xx"`` (503),
``"garbage"`` (200, not JSON), ``"timeout"``, ``"network"`` or an HTTP status (``401``);
``revoke(token)`` invalidates an access token. ``requests`` records every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx2

from tests.fakes.fake_idp import FakeIdP, RecordedRequest


def record(request: httpx2.Request) -> RecordedRequest:
    body = request.content.decode() if request.content else ""
    is_form = "application/x-www-form-urlencoded" in request.headers.get("content-type", "")
    return RecordedRequest(
        method=request.method,
        path=request.url.path,
        url=str(request.url),
        query=dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)),
        form=dict(parse_qsl(body, keep_blank_values=True)) if is_form else {},
        headers={k.lower(): v for k, v in request.headers.items()},
    )


@dataclass
class _Failure:
    mode: str | int
    remaining: int | None


class ServiceFake:
    # The service's OAuth paths -> the FakeIdP endpoint that plays them ("token", ...).
    OAUTH_PATHS: ClassVar[Mapping[str, str]] = {}

    def __init__(self, idp: FakeIdP) -> None:
        self.idp = idp
        self.requests: list[RecordedRequest] = []
        self.access_tokens: set[str] = set()
        self._failures: dict[str, _Failure] = {}

    # -- knobs -----------------------------------------------------------------------

    def fail(self, route: str, mode: str | int, *, times: int | None = None) -> None:
        self._failures[route] = _Failure(mode, times)

    def heal(self) -> None:
        self._failures.clear()

    def revoke(self, token: str) -> None:
        self.access_tokens.discard(token)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- what subclasses define ------------------------------------------------------------

    def route(self, request: RecordedRequest) -> str | None:
        """The API route name for a request (``serve_<name>`` answers it), if any."""
        return None

    def shape_token(self, body: dict[str, Any]) -> dict[str, Any]:
        """A FakeIdP token response as the service would send it."""
        return body

    def authorized(self, request: RecordedRequest) -> bool:
        return request.bearer is not None and request.bearer in self.access_tokens

    # -- the transport -------------------------------------------------------------------

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        recorded = record(request)
        self.requests.append(recorded)
        endpoint = self.OAUTH_PATHS.get(recorded.path)
        if endpoint is not None:
            return self._forward(request, endpoint)
        route = self.route(recorded)
        if route is None:
            return httpx2.Response(404, json={"error": "not_found", "path": recorded.path})
        failure = self._take_failure(route)
        if failure is not None:
            return _failure_response(failure, request)
        response: httpx2.Response = getattr(self, f"serve_{route}")(recorded)
        return response

    def _forward(self, request: httpx2.Request, endpoint: str) -> httpx2.Response:
        forwarded = httpx2.Request(
            request.method,
            self.idp.url(endpoint),
            headers=request.headers,
            content=request.content,
        )
        response = self.idp(forwarded)
        if endpoint != "token" or response.status_code != 200:
            return response
        try:
            body = response.json()
        except ValueError:
            return response  # the FakeIdP's "garbage" knob: pass it on as it is
        shaped = self.shape_token(body)
        self.access_tokens.add(shaped["access_token"])
        return httpx2.Response(200, json=shaped)

    def _take_failure(self, route: str) -> str | int | None:
        failure = self._failures.get(route)
        if failure is None:
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                del self._failures[route]
        return failure.mode


def _failure_response(mode: str | int, request: httpx2.Request) -> httpx2.Response:
    if isinstance(mode, int):
        return httpx2.Response(mode, json={"error": f"fake service says {mode}"})
    if mode == "5xx":
        return httpx2.Response(503, text="<html>service unavailable</html>")
    if mode == "garbage":
        return httpx2.Response(
            200, text="<html>not json", headers={"content-type": "application/json"}
        )
    if mode == "timeout":
        raise httpx2.ReadTimeout("fake service timed out", request=request)
    if mode == "network":
        raise httpx2.ConnectError("fake service unreachable", request=request)
    raise ValueError(f"unknown failure mode {mode!r}")
