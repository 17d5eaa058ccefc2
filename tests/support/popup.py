"""Reading the popup page the way the Backstage frontend's opener receives it."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

_AUTH_RESPONSE = re.compile(r"var authResponse = decodeURIComponent\('([^']*)'\);")
_ORIGIN = re.compile(r"var origin = decodeURIComponent\('([^']*)'\);")


def popup_message(html: str) -> dict[str, Any]:
    m = _AUTH_RESPONSE.search(html)
    assert m, f"not a popup page: {html[:200]}"
    message = json.loads(unquote(m.group(1)))
    assert isinstance(message, dict)
    return message


def popup_target_origin(html: str) -> str:
    m = _ORIGIN.search(html)
    assert m
    return unquote(m.group(1))
