"""Where each OpenAPI document of this server is mounted, and where its JSON and Swagger UI
are served: one table for the server that mounts them and the ``/docs`` page that links
them.

Documents that share a base path (pages and operations at the root; identity at
``/api/auth``, where the combined document lives) serve theirs under a folder of their
own: connexion serves every document at ``<base path>/openapi.json`` and ``/ui/``
otherwise, and the first one mounted hid the others (``/docs`` linked "Operations" to the
Pages document).
"""

from __future__ import annotations

from dataclasses import dataclass

# Every mounted document that describes an API, combined into one (app.server.spec_combined).
COMBINED_DOCUMENT_URL = "/api/auth/openapi.json"


@dataclass(frozen=True)
class ServiceDocument:
    file: str  # in spec/; its stem names the handler module (app.handlers.<stem>)
    title: str  # on /docs
    base_path: str
    docs_folder: str = ""  # under the base path: where its JSON and Swagger UI are
    # In the combined document (the pages, HTML for people, are not an API).
    combined: bool = True

    @property
    def name(self) -> str:
        return self.file.removesuffix(".yaml")

    @property
    def spec_url(self) -> str:
        return f"{self.base_path}{self.docs_folder}/openapi.json"

    @property
    def ui_url(self) -> str:
        return f"{self.base_path}{self.docs_folder}/ui/"


def provider_spec_url(provider_id: str) -> str:
    return f"/api/auth/{provider_id}/openapi.json"


def provider_ui_url(provider_id: str) -> str:
    return f"/api/auth/{provider_id}/ui/"


# Mounted in this order, after the providers' documents (at /api/auth/<id>): a mount at
# /api/auth would otherwise swallow theirs.
SERVICE_DOCUMENTS: tuple[ServiceDocument, ...] = (
    # The auth plugin's actions registry (before /api/auth, which would swallow it).
    ServiceDocument("actions.yaml", "Actions (auth plugin)", "/api/auth/.backstage/actions"),
    ServiceDocument("identity.yaml", "Identity", "/api/auth", "/identity"),
    # Backstage as an OAuth authorization server; its paths as configured
    # (app.server.documents.authorization_document).
    ServiceDocument("authorization.yaml", "Authorization server", "/api/auth", "/authorization"),
    ServiceDocument("health.yaml", "Health (Backstage)", "/.backstage/health/v1"),
    ServiceDocument("operations.yaml", "Operations", "", "/operations"),
    # Also at "": routed after operations (connexion chains APIs of one base path).
    ServiceDocument("pages.yaml", "Pages", "", "/pages", combined=False),
)
