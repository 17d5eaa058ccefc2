"""Mounts this server's OpenAPI documents: one per provider, the service documents, and the
combined one for API clients.

Each document is parsed once per process (app.server.spec_loader); every provider gets its
own copy of ``spec/openapi.yaml`` made for it (app.server.spec_documents), mounted with its
own Swagger UI. Where each document's JSON and UI are served: app.handlers.documents.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connexion import AsyncApp
from connexion.options import SwaggerUIOptions
from starlette.requests import Request
from starlette.responses import Response

from app.handlers.context import ProviderRuntime, Services
from app.handlers.documents import COMBINED_DOCUMENT_URL, SERVICE_DOCUMENTS, provider_spec_url
from app.providers.registry_types import ProviderDefinition
from app.server.resolver import BoundResolver
from app.server.spec_combined import MountedDocument, combined_document
from app.server.spec_documents import provider_document
from app.server.spec_loader import load_spec, spec_template

# app/spec links to the top-level spec/ in a checkout; a built wheel carries the files.
SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"
# Mounted once per provider, at /api/auth/<id>.
PROVIDER_DOCUMENT = "openapi.yaml"

COMBINED_DESCRIPTION = f"""\
Every API that this backstage-auth-backend mounts, in one document: each configured
provider's (`/api/auth/<id>`), the identity endpoints, Backstage's health endpoints and
the server's own operations. Each is also a document of its own with its Swagger UI (at
`/docs`), e.g. `{provider_spec_url("<id>")}`.
"""


def provider_spec(provider_id: str, definition: ProviderDefinition) -> dict[str, Any]:
    """The document mounted for one provider."""
    return provider_document(
        spec_template(SPEC_DIR / PROVIDER_DOCUMENT),
        provider_id,
        kind=definition.kind,
        start_params=definition.start_params,
    )


def add_documents(
    app: AsyncApp,
    runtimes: list[ProviderRuntime],
    services: Services,
    providers: Mapping[str, ProviderDefinition],
    *,
    validate_responses: bool,
) -> list[MountedDocument]:
    """Mounts every document; returns those that the combined document describes."""
    mounted: list[MountedDocument] = []
    for runtime in runtimes:
        module = "app.handlers.oauth" if runtime.kind == "oauth" else "app.handlers.proxy"
        base_path = f"/api/auth/{runtime.provider_id}"
        document = provider_spec(runtime.provider_id, providers[runtime.provider_id])
        mounted.append(MountedDocument(runtime.provider_id, base_path, document))
        app.add_api(
            document,
            base_path=base_path,
            name=f"auth-{runtime.provider_id}",
            resolver=BoundResolver(module, runtime=runtime),
            pythonic_params=True,
            validate_responses=validate_responses,
        )
    for service in SERVICE_DOCUMENTS:
        document = load_spec(SPEC_DIR / service.file)
        if service.file == "authorization.yaml":
            document = authorization_document(document, services)
        if service.combined:
            mounted.append(MountedDocument(service.name, service.base_path, document))
        app.add_api(
            document,
            base_path=service.base_path,
            name=service.name,
            resolver=BoundResolver(f"app.handlers.{service.name}", services=services),
            validate_responses=validate_responses,
            swagger_ui_options=SwaggerUIOptions(
                # backend.swaggerUi: false turns the UIs off; the JSON documents stay.
                swagger_ui=services.settings.swagger_ui,
                spec_path=f"{service.docs_folder}/openapi.json",
                swagger_ui_path=f"{service.docs_folder}/ui",
            ),
        )
    _add_combined(app, mounted)
    return mounted


def authorization_document(document: dict[str, Any], services: Services) -> dict[str, Any]:
    """Only the routes Backstage mounts for this config: the code flow with static
    clients, the offline-sessions route with refresh tokens; elsewhere Backstage's 404."""
    server = services.authorization
    keep = {"/.well-known/oauth-client/cli.json"}
    if server is not None:
        keep |= {path for path in document["paths"] if path.startswith("/v1/")}
        if server.offline is None:
            keep.discard("/v1/offline-sessions/revoke")
    return {**document, "paths": {k: v for k, v in document["paths"].items() if k in keep}}


def _add_combined(app: AsyncApp, mounted: list[MountedDocument]) -> None:
    # Served like connexion serves each document (a route of its own, in no document),
    # and combined at the first request: nothing at start.
    @functools.cache
    def body() -> bytes:
        document = combined_document(
            mounted, title="backstage-auth-backend", description=COMBINED_DESCRIPTION
        )
        return json.dumps(document).encode()

    async def combined(request: Request) -> Response:
        return Response(body(), media_type="application/json")

    app.add_url_rule(COMBINED_DOCUMENT_URL, "combined_document", combined, methods=["GET"])
