"""A real sign-in through the configured resolvers, traced: when it fails, the step list
(which resolver, what it looked up, what it found, why it stopped: the steps
``explain-sign-in`` prints) goes into the failure's one structured event (``sign_in_failed``,
``refresh_failed``) as ``steps``. The user still sees Backstage's error; steps hold entity
refs and query values, never tokens."""

from __future__ import annotations

from typing import Any

from app.handlers.context import Services
from app.identity.resolvers import SignInResolver
from app.identity.sign_in_trace import Step, TracingContext
from app.identity.types import BackstageIdentity, SignInInfo

_STEPS = "sign_in_steps"


async def traced_sign_in(
    services: Services, resolver: SignInResolver, info: SignInInfo
) -> BackstageIdentity:
    context = TracingContext.around(services.resolver_context)
    try:
        return await resolver(info, context)
    except Exception as exc:
        # Carried by the exception to the handler's one failure event.
        setattr(exc, _STEPS, context.steps)
        raise


def sign_in_steps(exc: BaseException) -> dict[str, Any]:
    """``steps=...`` for a failure event, when the failure came from the resolvers."""
    steps: list[Step] | None = getattr(exc, _STEPS, None)
    return {} if steps is None else {"steps": steps}
