"""A connexion Resolver that binds every operation to its runtime.

The spec names bare operationIds (``start``, ``refresh``, ...); this resolver looks them
up in one handler module and binds ``runtime=`` (or ``services=``) with a partial, so a
request can never choose another provider and handlers need no globals.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from connexion.resolver import Resolver


class BoundResolver(Resolver):  # type: ignore[misc]
    def __init__(self, module: str, **bound: Any) -> None:
        super().__init__()
        self._module = importlib.import_module(module)
        self._bound = bound

    def resolve_function_from_operation_id(self, operation_id: str) -> Callable[..., Any]:
        function = getattr(self._module, operation_id)
        bound = functools.partial(function, **self._bound)
        # connexion inspects the handler's signature on every request; a partial's is
        # recomputed each time, so compute it once.
        bound.__signature__ = inspect.signature(bound)  # type: ignore[attr-defined]
        return bound
