"""app.oauth.scopes: scope splitting and merging."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from app.oauth.scopes import join_scope, merge_scopes, split_scope


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("   ", []),
        (" , | \t\n", []),
        ("repo", ["repo"]),
        ("repo read:user", ["repo", "read:user"]),
        ("openid,profile,email", ["openid", "profile", "email"]),
        ("openid|profile|email", ["openid", "profile", "email"]),
        ("  a ,b|c\td\ne  ", ["a", "b", "c", "d", "e"]),
        ("a,,b||c  d", ["a", "b", "c", "d"]),
        (
            "https://graph.microsoft.com/User.Read offline_access",
            ["https://graph.microsoft.com/User.Read", "offline_access"],
        ),
        ("a a", ["a", "a"]),  # splitting does not dedupe
        (["a b", "c,d", "", "e"], ["a", "b", "c", "d", "e"]),
        (("x|y",), ["x", "y"]),
        ([], []),
    ],
)
def test_split_scope(value: str | Iterable[str] | None, expected: list[str]) -> None:
    assert split_scope(value) == expected


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ((), []),
        (([],), []),
        ((["a", "b"],), ["a", "b"]),
        ((["a", "b"], ["b", "c"], ["a", "d"]), ["a", "b", "c", "d"]),
        ((["b", "a"], ["a", "b"]), ["b", "a"]),
        ((["a", "a", "a"],), ["a"]),
        ((["read:user"], ("repo", "read:user"), iter(["x"])), ["read:user", "repo", "x"]),
        # Case matters: scopes are case-sensitive.
        ((["Repo"], ["repo"]), ["Repo", "repo"]),
    ],
)
def test_merge_scopes_is_an_order_preserving_union(
    groups: tuple[Iterable[str], ...], expected: list[str]
) -> None:
    assert merge_scopes(*groups) == expected


def test_join_scope() -> None:
    assert join_scope(["repo", "read:user"]) == "repo read:user"
    assert join_scope([]) == ""
    assert join_scope(merge_scopes(split_scope("a,b"), split_scope("b|c"))) == "a b c"
