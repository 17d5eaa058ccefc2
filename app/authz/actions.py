"""The auth plugin's actions (Backstage's ``createAuthActions``, served by the actions
registry of ``@backstage/backend-defaults``): ``who-am-i``, which MCP agents call to learn
whose credentials they hold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.errors import InputError, NotAllowedError, NotFoundError
from app.identity.catalog import Catalog, user_entity

PLUGIN_ID = "auth"
WHO_AM_I = f"{PLUGIN_ID}:who-am-i"
_DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# The schemas as zod-to-json-schema writes Backstage's zod schemas.
_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {},
    "additionalProperties": False,
    "$schema": _DRAFT_07,
}
_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entity": {
            "type": "object",
            "properties": {},
            "additionalProperties": True,
            "description": "The full catalog entity for the authenticated user",
        },
        "userInfo": {
            "type": "object",
            "properties": {
                "userEntityRef": {
                    "type": "string",
                    "description": "The entity ref of the user, e.g. user:default/jane.doe",
                },
                "ownershipEntityRefs": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Entity refs that the user claims ownership through",
                },
            },
            "required": ["userEntityRef", "ownershipEntityRefs"],
            "additionalProperties": False,
            "description": "User identity information extracted from the authentication token",
        },
    },
    "required": ["entity", "userInfo"],
    "additionalProperties": False,
    "$schema": _DRAFT_07,
}

WHO_AM_I_ENTRY: dict[str, Any] = {
    "id": WHO_AM_I,
    "name": "who-am-i",
    "title": "Who Am I",
    "description": (
        "Returns the catalog entity and user info for the currently authenticated user. "
        "This action requires user credentials and cannot be used with service or "
        "unauthenticated credentials."
    ),
    "pluginId": PLUGIN_ID,
    "attributes": {"destructive": False, "idempotent": True, "readOnly": True},
    "schema": {"input": _INPUT_SCHEMA, "output": _OUTPUT_SCHEMA},
}


def check_input(action_id: str, value: Any) -> None:
    """``z.object({})``: any object (unknown keys are dropped), nothing else."""
    if not isinstance(value, Mapping):
        raise InputError(f'Invalid input to action "{action_id}"')


async def who_am_i(
    *,
    principal_kind: str,
    user_entity_ref: str | None,
    ownership_refs: list[str],
    catalog: Catalog,
) -> dict[str, Any]:
    if principal_kind != "user" or user_entity_ref is None:
        raise NotAllowedError("This action requires user credentials")
    entity = await user_entity(catalog, user_entity_ref)
    if entity is None:
        raise NotFoundError(f'User entity not found in the catalog for "{user_entity_ref}"')
    return {
        "entity": dict(entity),
        "userInfo": {"userEntityRef": user_entity_ref, "ownershipEntityRefs": ownership_refs},
    }
