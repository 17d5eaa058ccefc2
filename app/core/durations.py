"""Backstage durations: a HumanDuration object, an ISO 8601 string or an ``ms`` string.

(``@backstage/config`` ``readDurationFromConfig``.) ISO 8601 parsing is pydantic's.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

_HUMAN_UNITS_SECONDS = {
    "years": 365.25 * 86400,
    "months": 30.4375 * 86400,
    "weeks": 7 * 86400,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
    "milliseconds": 0.001,
}
# The units of the "ms" package Backstage accepts ("1h", "2 days", "500ms").
_MS_UNITS_SECONDS = {
    ("ms", "msec", "msecs", "millisecond", "milliseconds"): 0.001,
    ("s", "sec", "secs", "second", "seconds"): 1,
    ("m", "min", "mins", "minute", "minutes"): 60,
    ("h", "hr", "hrs", "hour", "hours"): 3600,
    ("d", "day", "days"): 86400,
    ("w", "week", "weeks"): 7 * 86400,
    ("y", "yr", "yrs", "year", "years"): 365.25 * 86400,
}
_MS_PATTERN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.I)
_TIMEDELTA = TypeAdapter(timedelta)


def parse_duration_seconds(value: Any) -> float:
    """Seconds of a Backstage duration.

    Raises:
        ValueError: with a message saying what is accepted.
    """
    if isinstance(value, dict):
        unknown = set(value) - set(_HUMAN_UNITS_SECONDS)
        if unknown or not value:
            raise ValueError(
                f"invalid duration object; use the keys {', '.join(_HUMAN_UNITS_SECONDS)}"
            )
        total = 0.0
        for unit, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise ValueError(f"duration '{unit}' must be a number")
            total += amount * _HUMAN_UNITS_SECONDS[unit]
        return total
    if isinstance(value, str):
        if value.strip().upper().startswith("P"):
            try:
                return _TIMEDELTA.validate_python(value.strip()).total_seconds()
            except ValidationError as exc:
                raise ValueError(f"invalid ISO 8601 duration '{value}'") from exc
        m = _MS_PATTERN.match(value)
        if m:
            unit = m.group(2).lower() or "ms"
            for names, seconds in _MS_UNITS_SECONDS.items():
                if unit in names:
                    return float(m.group(1)) * seconds
    raise ValueError(
        f"invalid duration {value!r}; use an object like {{hours: 1}}, "
        "an ISO 8601 duration like 'PT1H' or a string like '1h'"
    )
