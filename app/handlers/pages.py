"""Pages for people: the demo app at ``/`` and the Swagger UI index at ``/docs``.

The demo page is served in development, or when ``backend.demoPage`` is true; ``/docs``
unless ``backend.swaggerUi`` is false (which also turns off every Swagger UI).

The demo page is static HTML + JS (``app/static``); the server renders the configured
providers into it as a JSON data island, so it needs no API of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import Response

from app.config.validation import ConfigError
from app.core.errors import NotFoundError
from app.devidp.settings import dev_idp_settings
from app.handlers.context import Services
from app.handlers.documents import (
    COMBINED_DOCUMENT_URL,
    SERVICE_DOCUMENTS,
    provider_spec_url,
    provider_ui_url,
)
from app.handlers.responses import respond
from app.oauth.origins import parse_origin
from app.providers.registry import REGISTRY

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(STATIC_DIR), autoescape=True, undefined=jinja2.StrictUndefined
)
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_STATIC_FILES = frozenset({"demo.js", "demo.css"})
_HTML = "text/html; charset=utf-8"

# The scopes the stock frontend's auth APIs ask for by default (@backstage/core-app-api);
# the server adds each provider's required scopes anyway.
_DEFAULT_SCOPES = {
    "github": "read:user",
    "gitlab": "read_user",
    "google": "openid https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile",
    "microsoft": "openid offline_access profile email User.Read",
    "bitbucket": "account",
    "bitbucketServer": "REPO_READ",
    "atlassian": "offline_access read:jira-work read:jira-user",
}
_OIDC_SCOPES = "openid profile email offline_access"


def _providers(services: Services) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for provider_id, config in services.settings.providers.items():
        definition = REGISTRY.get(provider_id)
        if definition is None:
            continue  # not mounted
        entry: dict[str, Any] = {"id": provider_id, "kind": definition.kind}
        if definition.kind == "oauth":
            entry["environments"] = [k for k, v in config.items() if isinstance(v, dict)]
            entry["scope"] = _DEFAULT_SCOPES.get(provider_id, _OIDC_SCOPES)
        out.append(entry)
    return out


def _page_headers(connect: str) -> dict[str, str]:
    return {
        "Content-Type": _HTML,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            f"connect-src 'self' {connect}; img-src 'self' data: https:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
    }


def _dev_idp_issuer(services: Services) -> str | None:
    try:
        dev = dev_idp_settings(services.settings, development=services.development)
    except ConfigError:
        return None
    return dev.issuer if dev is not None else None


def _check_demo_page(services: Services) -> None:
    """The demo page signs in with every provider from a page of this server: a tool for
    development, served in production only when ``backend.demoPage`` asks for it."""
    enabled = services.settings.demo_page
    if not (services.development if enabled is None else enabled):
        raise NotFoundError("The demo page is turned off (backend.demoPage)")


async def demo_page(services: Services) -> Response:
    _check_demo_page(services)
    settings = services.settings
    backend = parse_origin(settings.auth_base_url)
    config = {
        "authBaseUrl": settings.auth_base_url,
        "appOrigin": str(services.app_origin),
        "environment": settings.auth_environment,
        "providers": _providers(services),
        "devIdp": _dev_idp_issuer(services),
    }
    body = _TEMPLATES.get_template("demo.html").render(config=config)
    return respond(body.encode(), headers=_page_headers(str(backend)))


async def docs_index(services: Services) -> Response:
    if not services.settings.swagger_ui:
        raise NotFoundError("The API documentation is turned off (backend.swaggerUi)")
    apis = [
        {
            "title": f"Provider {p['id']} ({p['kind']})",
            "ui": provider_ui_url(p["id"]),
            "spec": provider_spec_url(p["id"]),
        }
        for p in _providers(services)
    ]
    apis += [
        {"title": document.title, "ui": document.ui_url, "spec": document.spec_url}
        for document in SERVICE_DOCUMENTS
    ]
    body = _TEMPLATES.get_template("docs.html").render(
        apis=apis, combined=COMBINED_DOCUMENT_URL, dev_idp=_dev_idp_issuer(services)
    )
    return respond(body.encode(), headers=_page_headers(""))


async def static_file(services: Services, name: str) -> Response:
    _check_demo_page(services)
    # The spec's enum admits only these; checked again, as a path is built from it.
    if name not in _STATIC_FILES:
        raise NotFoundError(f"No such file '{name}'")
    path = STATIC_DIR / name
    return respond(
        path.read_bytes(),
        headers={
            "Content-Type": _STATIC_TYPES[path.suffix],
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )
