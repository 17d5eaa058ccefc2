"""The open file limit raised at start and the connection limit below it
(app/server/descriptors.py)."""

from __future__ import annotations

import resource

import pytest

from app.server import descriptors


@pytest.mark.parametrize(
    ("soft", "limit"), [(1024, 922), (320, 256), (100, 36), (65536, 58983), (10, 1)]
)
def test_the_connection_limit_keeps_a_reserve(soft: int, limit: int) -> None:
    assert descriptors.connection_limit(soft) == limit


def test_the_soft_limit_is_raised_to_the_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: calls.append(limits))
    assert descriptors.raise_soft_limit() == 4096
    assert calls == [(4096, 4096)]


def test_a_refused_raise_keeps_the_soft_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(_: int, __: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert descriptors.raise_soft_limit() == 1024
    assert "cannot raise the open file limit from 1024 to 1048576" in caplog.text
