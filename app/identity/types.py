"""Types shared by providers, handlers and identity (kept here so none imports the others)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProfileInfo:
    """The user's profile as the frontend receives it (``profile`` in responses)."""

    email: str | None = None
    display_name: str | None = None
    picture: str | None = None

    def to_json(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.email is not None:
            out["email"] = self.email
        if self.display_name is not None:
            out["displayName"] = self.display_name
        if self.picture is not None:
            out["picture"] = self.picture
        return out


@dataclass(frozen=True)
class BackstageIdentity:
    """A signed-in Backstage user: ``backstageIdentity`` in responses."""

    token: str
    user_entity_ref: str
    ownership_entity_refs: tuple[str, ...]
    expires_in_seconds: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "token": self.token,
            "identity": {
                "type": "user",
                "userEntityRef": self.user_entity_ref,
                "ownershipEntityRefs": list(self.ownership_entity_refs),
            },
        }
        if self.expires_in_seconds is not None:
            out["expiresInSeconds"] = self.expires_in_seconds
        return out


@dataclass(frozen=True)
class SignInInfo:
    """What a sign-in resolver sees: the provider's profile plus provider-specific facts.

    ``result`` holds provider-specific values resolvers may need (for example
    ``username``, ``user_id``, the ID token ``claims``), never tokens.
    """

    provider_id: str
    profile: ProfileInfo
    result: Mapping[str, Any] = field(default_factory=dict)

    @property
    def email_unverified(self) -> bool:
        """The provider said the profile's address is not verified (``email_verified:
        false``): anyone may have typed it in, so it must not match a catalog user."""
        return self.result.get(EMAIL_VERIFIED) is False


# The sign-in fact carrying the provider's ``email_verified`` for the profile's address.
EMAIL_VERIFIED = "email_verified"
