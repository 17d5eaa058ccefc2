"""What the sign-in resolvers did, step by step: for ``explain-sign-in`` and for the one
structured event a failed sign-in logs.

``TracingContext`` is an ``AuthResolverContext`` that records each resolver tried, each
catalog lookup (the query, what it found) and why a resolver stopped (not found, several
matches, unverified email, missing claim, not allowed). With ``dry_run`` it issues no token:
it records the identity it would issue. Steps hold entity refs, query values and messages,
never tokens or secrets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.core.errors import BackstageError, ConflictError, NotAllowedError, NotFoundError
from app.identity.catalog import Catalog, CatalogUser
from app.identity.resolvers import AuthResolverContext
from app.identity.tokens import canonicalize_identity
from app.identity.types import BackstageIdentity

Step = dict[str, Any]


def why_stopped(exc: BaseException, *, email_unverified: bool = False) -> str:
    """A resolver's stop reason, in the words an operator looks for."""
    if isinstance(exc, NotFoundError):
        return "not found"
    if isinstance(exc, ConflictError):
        return "several matches"
    if isinstance(exc, NotAllowedError):
        return "not allowed"
    message = exc.message if isinstance(exc, BackstageError) else str(exc)
    if "does not contain" in message or "missing" in message.lower():
        return "unverified email" if email_unverified and "email" in message else "missing claim"
    return "error"


class TracingContext(AuthResolverContext):
    def __init__(
        self,
        catalog: Catalog,
        base: AuthResolverContext | None,
        *,
        email_unverified: bool = False,
    ) -> None:
        # No super().__init__: a dry run has no token issuer, and every use of one goes
        # through ``issue_token`` below.
        self._catalog = catalog
        self._base = base
        self.email_unverified = email_unverified
        self.steps: list[Step] = []

    @classmethod
    def around(cls, base: AuthResolverContext) -> TracingContext:
        """Records what a real sign-in does; tokens are issued by ``base``."""
        return cls(base.catalog, base)

    @classmethod
    def dry_run(cls, catalog: Catalog, *, email_unverified: bool = False) -> TracingContext:
        """Records what a sign-in would do, issuing nothing."""
        return cls(catalog, None, email_unverified=email_unverified)

    # -- what the resolver chain reports ------------------------------------------------

    def resolver_started(self, name: str) -> None:
        self.steps.append({"step": "resolver", "resolver": name})

    def resolver_stopped(self, name: str, exc: BaseException) -> None:
        why = why_stopped(exc, email_unverified=self.email_unverified)
        message = exc.message if isinstance(exc, BackstageError) else str(exc)
        self.steps.append({"step": "stopped", "resolver": name, "why": why, "message": message})

    # -- the context's own work ---------------------------------------------------------

    async def find_catalog_user(
        self,
        *,
        entity_ref: str | None = None,
        annotations: Mapping[str, str] | None = None,
        email: str | None = None,
    ) -> CatalogUser:
        query: dict[str, Any] = {}
        if entity_ref is not None:
            query["entityRef"] = entity_ref
        if annotations is not None:
            query["annotations"] = dict(annotations)
        if email is not None:
            query["email"] = email
        step: Step = {"step": "lookup", "query": query}
        self.steps.append(step)
        try:
            user = await super().find_catalog_user(
                entity_ref=entity_ref, annotations=annotations, email=email
            )
        except (NotFoundError, ConflictError) as exc:
            step["found"] = why_stopped(exc)
            raise
        step["found"] = user.ref
        return user

    async def issue_token(
        self,
        *,
        sub: str,
        ent: Sequence[str] | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> BackstageIdentity:
        if self._base is not None:
            identity = await self._base.issue_token(sub=sub, ent=ent, extra_claims=extra_claims)
        else:
            ref, ownership = canonicalize_identity(sub, [sub] if ent is None else ent)
            identity = BackstageIdentity(
                token="", user_entity_ref=ref, ownership_entity_refs=ownership
            )
        self.steps.append(
            {
                "step": "issue" if self._base is not None else "would issue",
                "userEntityRef": identity.user_entity_ref,
                "ownershipEntityRefs": list(identity.ownership_entity_refs),
            }
        )
        return identity
