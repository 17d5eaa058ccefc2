"""connexion's ``AsyncApp`` with its per-request decoration done once per operation.

connexion 3.3 rebuilds every operation's decorator chain on each request
(``AsyncOperation.fn`` is a property that makes a new ``StarletteDecorator``, whose
wrapper calls ``decorate`` again, which inspects the handler's signature) and converts
each parameter name to its pythonic form (``inflection`` + three regexes) on every call.
None of that depends on the request: the operation being served comes from connexion's
context variables at call time. Building it once removes about a fifth of the
framework's cost per request (docs/benchmarks.md). Routing, request validation, argument
parsing and error handling stay connexion's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from connexion import AsyncApp
from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import receive, scope
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import AsyncParameterDecorator, pythonic, sanitized
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.security import SecurityMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.operations import AbstractOperation

# Parameter names come from the specs, so the set is small and fixed.
_pythonic = functools.lru_cache(maxsize=1024)(pythonic)
_sanitized = functools.lru_cache(maxsize=1024)(sanitized)


class _ParameterDecorator(AsyncParameterDecorator):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sanitize_fn = _pythonic if kwargs.get("pythonic_params") else _sanitized


class _DecorateOnce(StarletteDecorator):  # type: ignore[misc]
    @property
    def _parameter_decorator_cls(self) -> type[AsyncParameterDecorator]:
        return _ParameterDecorator

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        decorated = self.decorate(function)

        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = self.framework.get_request(
                uri_parser=self.uri_parser, scope=scope, receive=receive
            )
            return await decorated(request)

        return wrapper


class _Operation(AsyncOperation):  # type: ignore[misc]
    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(fn, **kwargs)
        self._decorated = _DecorateOnce(
            pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )(self._fn)

    @property
    def fn(self) -> Callable[..., Any]:
        return self._decorated

    @classmethod
    def from_operation(
        cls, operation: AbstractOperation, *, pythonic_params: bool, jsonifier: Any
    ) -> _Operation:
        return cls(
            operation.function,
            jsonifier=jsonifier,
            operation_id=operation.operation_id,
            pythonic_params=pythonic_params,
        )


class _Api(AsyncApi):  # type: ignore[misc]
    def make_operation(self, operation: AbstractOperation) -> _Operation:
        return _Operation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )


class _ASGIApp(AsyncASGIApp):  # type: ignore[misc]
    api_cls = _Api


def middlewares(*, swagger_ui: bool) -> list[Any]:
    """connexion's default stack without what this server never uses.

    No spec declares security schemes, so SecurityMiddleware only costs a routing hop;
    the Swagger UI middleware matches every request against every mounted API first.
    """
    return [
        m
        for m in ConnexionMiddleware.default_middlewares
        if m is not SecurityMiddleware and (swagger_ui or m is not SwaggerUIMiddleware)
    ]


class LeanAsyncApp(AsyncApp):  # type: ignore[misc]
    def __init__(self, import_name: str, **kwargs: Any) -> None:
        # AsyncApp.__init__ only creates its ASGI app and calls AbstractApp's: the same,
        # with operations that decorate once.
        self._middleware_app = _ASGIApp()
        AbstractApp.__init__(self, import_name, **kwargs)
