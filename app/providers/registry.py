"""Provider id -> definition. Ids and casing are Backstage's."""

from __future__ import annotations

from collections.abc import Mapping

from app.identity.resolvers import COMMON_RESOLVERS
from app.providers import guest, oauth2, oidc
from app.providers.registry_types import ProviderDefinition

REGISTRY: Mapping[str, ProviderDefinition] = {
    "oidc": ProviderDefinition(kind="oauth", factory=oidc.create, resolvers=COMMON_RESOLVERS),
    "oauth2": ProviderDefinition(kind="oauth", factory=oauth2.create, resolvers=COMMON_RESOLVERS),
    "guest": ProviderDefinition(kind="proxy", factory=guest.create),
}
