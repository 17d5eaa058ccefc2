"""app.core.errors: Backstage's error names, statuses and body.

Backstage: ``packages/errors/src/serialization/error.ts``
"""

from __future__ import annotations

import json

import pytest

from app.core.errors import (
    AuthenticationError,
    BackstageError,
    ConflictError,
    InputError,
    MethodNotAllowedError,
    NotAllowedError,
    NotFoundError,
    NotImplementedError_,
    ServiceUnavailableError,
    TooManyRequestsError,
    render_error_body,
    serialize_error,
)


@pytest.mark.parametrize(
    ("cls", "name", "status"),
    [
        (BackstageError, "Error", 500),
        (InputError, "InputError", 400),
        (AuthenticationError, "AuthenticationError", 401),
        (NotAllowedError, "NotAllowedError", 403),
        (NotFoundError, "NotFoundError", 404),
        (MethodNotAllowedError, "MethodNotAllowedError", 405),
        (ConflictError, "ConflictError", 409),
        (TooManyRequestsError, "TooManyRequestsError", 429),
        (NotImplementedError_, "NotImplementedError", 501),
        (ServiceUnavailableError, "ServiceUnavailableError", 503),
    ],
)
def test_names_and_status_codes(cls: type[BackstageError], name: str, status: int) -> None:
    exc = cls("boom")
    assert isinstance(exc, BackstageError)
    assert exc.name == name
    assert exc.status_code == status
    assert exc.message == "boom"
    assert str(exc) == "boom"
    assert exc.cause is None
    assert exc.to_json() == {"name": name, "message": "boom"}
    body = json.loads(render_error_body(exc, method="POST", url="/x"))
    assert body["response"] == {"statusCode": status}
    assert body["error"] == {"name": name, "message": "boom"}


def test_observed_refresh_without_cookie_body() -> None:
    exc = AuthenticationError("Refresh failed", cause=InputError("Missing session cookie"))
    body = render_error_body(exc, method="GET", url="/github/refresh?optional&env=development")
    assert body == (
        b'{"error":{"name":"AuthenticationError","message":"Refresh failed; caused by '
        b'InputError: Missing session cookie","cause":{"name":"InputError","message":'
        b'"Missing session cookie"}},"request":{"method":"GET","url":'
        b'"/github/refresh?optional&env=development"},"response":{"statusCode":401}}'
    )


def test_nested_causes_fold_into_each_message() -> None:
    inner = NotFoundError("user not found")
    middle = InputError("resolver failed", cause=inner)
    outer = AuthenticationError("Refresh failed", cause=middle)
    assert middle.message == "resolver failed; caused by NotFoundError: user not found"
    assert outer.message == (
        "Refresh failed; caused by InputError: resolver failed; "
        "caused by NotFoundError: user not found"
    )
    assert serialize_error(outer) == {
        "name": "AuthenticationError",
        "message": outer.message,
        "cause": {
            "name": "InputError",
            "message": middle.message,
            "cause": {"name": "NotFoundError", "message": "user not found"},
        },
    }
    body = json.loads(render_error_body(outer, method="GET", url="/guest/refresh"))
    # The guest sign-in page checks error.cause.name.
    assert body["error"]["cause"]["name"] == "InputError"
    assert body["error"]["cause"]["cause"]["name"] == "NotFoundError"


@pytest.mark.parametrize(
    ("cause", "folded", "serialized"),
    [
        (ValueError("bad value"), "Error: bad value", {"name": "Error", "message": "bad value"}),
        (ValueError(), "Error: ValueError", {"name": "Error", "message": "ValueError"}),
        (
            BackstageError("plain"),
            "Error: plain",
            {"name": "Error", "message": "plain"},
        ),
    ],
)
def test_foreign_causes(cause: BaseException, folded: str, serialized: dict[str, str]) -> None:
    exc = ServiceUnavailableError("Key store down", cause=cause)
    assert exc.message == f"Key store down; caused by {folded}"
    assert exc.to_json() == {
        "name": "ServiceUnavailableError",
        "message": exc.message,
        "cause": serialized,
    }


def test_serialize_non_backstage_error() -> None:
    assert serialize_error(RuntimeError("x")) == {"name": "Error", "message": "x"}


def test_body_shape_and_keys() -> None:
    body = json.loads(render_error_body(NotAllowedError("no"), method="GET", url="/a?b"))
    assert body == {
        "error": {"name": "NotAllowedError", "message": "no"},
        "request": {"method": "GET", "url": "/a?b"},
        "response": {"statusCode": 403},
    }
    assert list(body) == ["error", "request", "response"]
