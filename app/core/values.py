"""Small checks on values from outside (identity-provider JSON, token claims)."""

from __future__ import annotations

from typing import Any


def non_empty_str(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None
