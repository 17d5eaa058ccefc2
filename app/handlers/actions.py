"""The auth plugin's actions registry under ``/api/auth/.backstage/actions`` (Backstage's
``DefaultActionsRegistryService`` router): who may call which route and the error
answers; the action itself is ``app.authz.actions``'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from app.authz.actions import WHO_AM_I, WHO_AM_I_ENTRY, check_input, who_am_i
from app.core.errors import AuthenticationError, InputError, NotAllowedError, NotFoundError
from app.handlers.authorization_wire import Principal, principal
from app.handlers.context import Services
from app.handlers.identity import verify_user_token
from app.handlers.responses import json_response


async def list_actions(services: Services) -> Response:
    await principal(services)  # a bad token is refused; anyone else may list
    return json_response({"actions": [WHO_AM_I_ENTRY]})


async def actions_status(services: Services) -> Response:
    caller = await principal(services)
    if caller.kind == "none":
        raise AuthenticationError("Missing credentials")
    if caller.kind != "service":
        raise NotAllowedError(f"This endpoint does not allow '{caller.kind}' credentials")
    return json_response({"hasActions": True})


async def invoke_action(services: Services, actionId: str, body: Any = None) -> Response:  # noqa: N803
    # Express's JSON parser gives an empty object for a request without a body.
    return await _invoke(services, actionId, {} if body is None else body, secrets=None)


async def invoke_action_v2(services: Services, actionId: str, body: Any = None) -> Response:  # noqa: N803
    wrapped = body if isinstance(body, Mapping) else {}
    return await _invoke(services, actionId, wrapped.get("input"), secrets=wrapped.get("secrets"))


async def _invoke(services: Services, action_id: str, raw_input: Any, *, secrets: Any) -> Response:
    caller = await principal(services)
    if caller.kind == "none":
        raise NotAllowedError(
            "Actions must be invoked by an authenticated principal, not an anonymous request"
        )
    if action_id != WHO_AM_I:
        raise NotFoundError(f'Action "{action_id}" not found')
    check_input(action_id, raw_input)
    if secrets is not None:
        raise InputError(f'Action "{action_id}" does not accept secrets')
    output = await who_am_i(
        principal_kind=caller.kind,
        user_entity_ref=caller.subject if caller.kind == "user" else None,
        ownership_refs=await _ownership(services, caller),
        catalog=services.catalog,
    )
    return json_response({"output": output})


async def _ownership(services: Services, caller: Principal) -> list[str]:
    """Backstage's user info: the user token's ``ent`` claim, else the stored user info
    (a limited ``obo`` token carries no ``ent``)."""
    if caller.kind != "user":
        return []
    claims = await verify_user_token(services, caller.user_token) if caller.user_token else {}
    ent = claims.get("ent")
    if ent is None:
        stored = await services.user_info.get(caller.subject)
        stored_claims = (stored or {}).get("claims")
        ent = stored_claims.get("ent") if isinstance(stored_claims, Mapping) else None
    return [ref for ref in ent if isinstance(ref, str)] if isinstance(ent, list) else []
