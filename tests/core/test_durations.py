"""app.core.durations: Backstage durations (readDurationFromConfig)."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.durations import parse_duration_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # HumanDuration objects
        ({"hours": 1}, 3600),
        ({"minutes": 1, "seconds": 30}, 90),
        ({"days": 1.5}, 129600),
        ({"weeks": 2}, 14 * 86400),
        ({"milliseconds": 500}, 0.5),
        ({"hours": 0}, 0),
        # ISO 8601
        ("PT1H", 3600),
        ("PT15M", 900),
        ("PT0.5S", 0.5),
        ("P1D", 86400),
        ("P1DT12H", 129600),
        ("P1W", 7 * 86400),
        (" PT1H ", 3600),
        # "ms" strings
        ("1h", 3600),
        ("1H", 3600),
        ("1.5h", 5400),
        ("1 h", 3600),
        ("2 days", 172800),
        ("1 day", 86400),
        ("2d", 172800),
        ("30m", 1800),
        ("30 minutes", 1800),
        ("45s", 45),
        ("10 secs", 10),
        ("500ms", 0.5),
        ("500 milliseconds", 0.5),
        ("10", 0.01),  # a bare number is milliseconds, as in ms()
        ("1w", 7 * 86400),
        ("1y", 365.25 * 86400),
    ],
)
def test_valid_durations(value: Any, seconds: float) -> None:
    assert parse_duration_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "abc",
        "h",
        "1 fortnight",
        "1h30m",
        "one hour",
        "P",
        "PT",
        "PTXH",
        {},
        {"hour": 1},
        {"hours": 1, "eons": 2},
        {"hours": "1"},
        {"hours": True},
        {"hours": None},
        5,
        3.5,
        None,
        [],
        ["1h"],
        True,
    ],
)
def test_invalid_durations_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration_seconds(value)


def test_error_message_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"\{hours: 1\}.*'PT1H'.*'1h'"):
        parse_duration_seconds("forever")
    with pytest.raises(ValueError, match="years, months, weeks, days, hours, minutes, seconds"):
        parse_duration_seconds({"hour": 1})
