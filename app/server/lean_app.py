"""connexion's ``AsyncApp`` with its per-request set-up done once per operation.

connexion 3.3 rebuilds every operation's decorator chain on each request
(``AsyncOperation.fn`` is a property that makes a new ``StarletteDecorator``, whose
wrapper calls ``decorate`` again, which inspects the handler's signature) and converts
each parameter name to its pythonic form (``inflection`` + three regexes) on every call.
None of that depends on the request: the operation being served comes from connexion's
context variables at call time. Building it once removes about a fifth of the
framework's cost per request (docs/benchmarks.md). Likewise its parameter validator
deep-copies each parameter's definition and builds a JSON-schema validator for it on every
request; here each is built once. Routing, request validation (same schemas, same
messages), argument parsing and error handling stay connexion's own.

connexion also validates every document against the OpenAPI 3.0 schema as it is added:
0.1 s of each start for the seven documents this server mounts, more than half of building
the app. They are made from spec/ by this server's code (app.server.spec_documents), from
the provider registry, never from the configuration: tests/server/test_spec_loader.py
checks each file with connexion's own validator, and tests/server/test_spec_documents.py
every document that ``add_documents`` can mount with openapi-spec-validator (stricter:
unique operationIds too), so ``add_api`` here does not repeat it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from connexion import AsyncApp
from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import receive, scope
from connexion.datastructures import MediaTypeDict
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import AsyncParameterDecorator, pythonic, sanitized
from connexion.json_schema import Draft4RequestValidator
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.security import SecurityMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.operations import AbstractOperation, OpenAPIOperation
from connexion.spec import OpenAPISpecification
from connexion.utils import is_null, is_nullable
from connexion.validators import VALIDATOR_MAP
from connexion.validators.form_data import FormDataValidator
from connexion.validators.parameter import ParameterValidator, draft4_format_checker
from jsonschema import Draft4Validator, ValidationError  # type: ignore[import-untyped]
from starlette.routing import Mount, Router
from starlette.types import Receive, Scope, Send

from app.config.backend import RequestLimitSettings

# Names from the specs, and query keys from requests (hence the bound on the cache).
_pythonic = functools.lru_cache(maxsize=1024)(pythonic)
_sanitized = functools.lru_cache(maxsize=1024)(sanitized)


# (id(definition), what is made of it) -> (the definition, what was made: a validator,
# a fact about the schema). The definition is kept so that its id cannot be reused; a full
# cache (apps built over and over, in tests) restarts.
_VALIDATORS: dict[tuple[int, Callable[..., Any]], tuple[Any, Any]] = {}
_MAX_VALIDATORS = 4096


def _once(definition: dict[str, Any], make: Callable[[dict[str, Any]], Any]) -> Any:
    """``make(definition)``, made once per spec definition (they do not change)."""
    key = (id(definition), make)
    hit = _VALIDATORS.get(key)
    if hit is not None and hit[0] is definition:
        return hit[1]
    if len(_VALIDATORS) >= _MAX_VALIDATORS:
        _VALIDATORS.clear()
    made = make(definition)
    _VALIDATORS[key] = (definition, made)
    return made


def _parameter_validator(param: dict[str, Any]) -> Draft4Validator:
    return Draft4Validator(param.get("schema", param), format_checker=draft4_format_checker)


def _form_validator(schema: dict[str, Any]) -> Draft4RequestValidator:
    return Draft4RequestValidator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


class _ParameterValidator(ParameterValidator):  # type: ignore[misc]
    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> str | None:
        # connexion 3.3's, with the validator built once.
        if is_nullable(param) and is_null(value):
            return None
        if value is not None:
            try:
                _once(param, _parameter_validator).validate(value)
            except ValidationError as exception:
                return str(exception)
            return None
        if param.get("required"):
            return f"Missing {parameter_type} parameter '{param['name']}'"
        return None


# Where the form connexion's body validation parsed waits for the handler's arguments.
_VALIDATED_FORM = "app.validated_form"


def _has_files(schema: dict[str, Any]) -> bool:
    def is_file(definition: dict[str, Any]) -> bool:
        return definition.get("type") == "string" and definition.get("format") in (
            "binary",
            "base64",
        )

    fields = schema.get("properties", {}).values()
    return any(is_file(field) or is_file(field.get("items", {})) for field in fields)


class _FormValidator(FormDataValidator):  # type: ignore[misc]
    """connexion's ``application/x-www-form-urlencoded`` validation, with its JSON-schema
    validator built once per schema (it built one per request), and the form it parsed
    handed to the handler's arguments (``_DecorateOnce``), which parsed the body again.
    Not for a form with file fields: connexion validates placeholders for those."""

    @property
    def _validator(self) -> Draft4RequestValidator:
        return _once(self._schema, _form_validator)

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> dict[str, Any]:
        form: dict[str, Any] = await super()._parse(stream, scope)
        if self._uri_parser is not None and not _once(self._schema, _has_files):
            scope.setdefault("extensions", {})[_VALIDATED_FORM] = form
        return form


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
            # The same bytes, parsed by the same URI parser class from the same definitions.
            form = scope.get("extensions", {}).get(_VALIDATED_FORM)
            if form is not None:
                request._form, request._files = form, {}
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


class _Api(AsyncApi):  # type: ignore[misc]
    def make_operation(self, operation: AbstractOperation) -> _Operation:
        # connexion's from_operation builds `cls(...)`: ours, decorated once.
        made: _Operation = _Operation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )
        return made


class _SpecOperation(OpenAPIOperation):  # type: ignore[misc]
    """connexion's operation with its body definition built once per content type.

    The validation middleware and the parameter decorator ask for it about nine times per
    request, and each time connexion resolves the schema's references again and, for a
    body of several content types (``/v1/token``, ``/v1/revoke``), logs a warning record
    that the logging filter then drops. Only the content types the operation declares
    (and None, its first) are kept: a request's own can be anything.
    """

    def body_definition(self, content_type: str | None = None) -> dict[str, Any]:
        cache: dict[str | None, dict[str, Any]] = self.__dict__.setdefault("_bodies", {})
        found = cache.get(content_type)
        if found is None:
            found = super().body_definition(content_type)
            if content_type is None or content_type in self.consumes:
                cache[content_type] = found
        return found


class _ASGIApp(AsyncASGIApp):  # type: ignore[misc]
    api_cls = _Api


_SPEC_SUFFIXES = ("/openapi.json", "/openapi.yaml")


class _SwaggerUI(SwaggerUIMiddleware):  # type: ignore[misc]
    """connexion's, routing only the requests that can be its own (the spec documents and
    the UI): it matched every request against every mounted API first.

    And APIs of one base path are chained, as connexion's routing does: connexion mounts
    each at its base path, and the first one's router answered every request under it,
    so the documents and UIs of the others (at their own paths) were never reached.
    """

    def add_api(self, specification: Any, base_path: str | None = None, **kwargs: Any) -> None:
        before = list(self.router.routes)
        super().add_api(specification, base_path=base_path, **kwargs)
        added = self.router.routes[-1]
        for route in before:
            router = route.app if isinstance(route, Mount) else None
            # The last of the chain is the one that still falls through to the next app.
            if isinstance(router, Router) and route.path == added.path:
                if router.default == self.default_fn:
                    router.default = added.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if "/ui" not in path and not path.endswith(_SPEC_SUFFIXES):
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def middlewares() -> list[Any]:
    """connexion's default stack, with the Swagger UI middleware above and without the
    security middleware (no spec declares security schemes: it only cost a routing hop)."""
    return [
        _SwaggerUI if m is SwaggerUIMiddleware else m
        for m in ConnexionMiddleware.default_middlewares
        if m is not SecurityMiddleware
    ]


def _unchecked(cls: type[OpenAPISpecification], spec: dict[str, Any]) -> None:
    return None


@contextlib.contextmanager
def _documents_unchecked() -> Iterator[None]:
    """connexion's ``OpenAPISpecification`` without its OpenAPI schema validation (the
    base class's ``_validate_spec``), for the duration; apps are built in one thread."""
    OpenAPISpecification._validate_spec = classmethod(_unchecked)
    try:
        yield
    finally:
        del OpenAPISpecification._validate_spec


class LeanAsyncApp(AsyncApp):  # type: ignore[misc]
    # What the server's protocol caps (app.server.protocol): create_app sets the app's own.
    request_limits: RequestLimitSettings = RequestLimitSettings()
    # Serves the development identity provider: only on loopback listeners (app.server.workers).
    loopback_only: bool = False

    def __init__(self, import_name: str, **kwargs: Any) -> None:
        # AsyncApp.__init__ only creates its ASGI app and calls AbstractApp's: the same,
        # with operations that decorate once.
        self._middleware_app = _ASGIApp()
        kwargs.setdefault(
            "validator_map",
            {
                "parameter": _ParameterValidator,
                # connexion replaces its whole map of body validators with this one.
                "body": MediaTypeDict(
                    {**VALIDATOR_MAP["body"], "application/x-www-form-urlencoded": _FormValidator}
                ),
            },
        )
        AbstractApp.__init__(self, import_name, **kwargs)

    def add_api(self, specification: dict[str, Any], **kwargs: Any) -> Any:
        """connexion's ``add_api`` for one of this server's documents (already validated
        by the tests: see the module's docstring)."""
        with _documents_unchecked():
            api = super().add_api(specification, **kwargs)
        # Every middleware makes its operations from this one specification object.
        self.middleware.apis[-1].specification.operation_cls = _SpecOperation
        return api
