"""app.oauth.state: Backstage's hex-encoded OAuth ``state``.

Backstage: ``plugins/auth-node/src/oauth/state.ts``
"""

from __future__ import annotations

import pytest

from app.core.errors import NotAllowedError
from app.oauth.state import OAuthState, decode_state, decode_state_fields, encode_state

# The decoded state observed on a real Backstage.
# (Backstage: ``plugins/auth-node/src/oauth/state.ts``)
OBSERVED_DECODED = (
    "nonce=OGZeh2QpDuqiOYyEC31f3A%3D%3D&env=development"
    "&origin=http%3A%2F%2Flocalhost%3A3000&flow=popup&scope=repo+read%3Auser"
)
OBSERVED_STATE = OAuthState(
    nonce="OGZeh2QpDuqiOYyEC31f3A==",
    env="development",
    origin="http://localhost:3000",
    flow="popup",
    scope="repo read:user",
)


def _text(encoded: str) -> str:
    return bytes.fromhex(encoded).decode("utf-8")


def test_encode_matches_observed_backstage_wire_format() -> None:
    encoded = encode_state(OBSERVED_STATE)
    assert encoded == OBSERVED_DECODED.encode().hex()


def test_encoding_is_lower_case_hex_only() -> None:
    encoded = encode_state(OBSERVED_STATE)
    assert encoded == encoded.lower()
    assert set(encoded) <= set("0123456789abcdef")
    assert len(encoded) % 2 == 0


def test_decode_observed_state() -> None:
    assert decode_state(OBSERVED_DECODED.encode().hex()) == OBSERVED_STATE


def test_decode_accepts_upper_case_hex() -> None:
    assert decode_state(OBSERVED_DECODED.encode().hex().upper()) == OBSERVED_STATE


def test_field_order_is_nonce_env_origin_redirect_url_flow_scope() -> None:
    state = OAuthState(
        nonce="n",
        env="e",
        origin="o",
        redirect_url="r",
        flow="f",
        scope="s",
    )
    assert _text(encode_state(state)) == "nonce=n&env=e&origin=o&redirectUrl=r&flow=f&scope=s"


def test_audience_comes_last_as_pinniped_appends_it() -> None:
    # Backstage's pinniped spreads the decoded state and adds ``audience`` at the end.
    state = OAuthState(nonce="n", env="e", flow="popup", scope="s", audience="cluster a")
    assert _text(encode_state(state)) == "nonce=n&env=e&flow=popup&scope=s&audience=cluster+a"
    assert decode_state(encode_state(state)).audience == "cluster a"


@pytest.mark.parametrize(
    ("state", "decoded"),
    [
        (OAuthState(nonce="n", env="e"), "nonce=n&env=e"),
        (OAuthState(nonce="n", env="e", flow="redirect"), "nonce=n&env=e&flow=redirect"),
        # Empty strings are kept (lodash pickBy drops only undefined).
        (OAuthState(nonce="n", env="e", origin=""), "nonce=n&env=e&origin="),
        (
            OAuthState(nonce="n", env="e", origin="", redirect_url="", flow="", scope=""),
            "nonce=n&env=e&origin=&redirectUrl=&flow=&scope=",
        ),
        (
            OAuthState(nonce="n", env="e", redirect_url="https://app.example.com/a?b=c&d=e f"),
            "nonce=n&env=e&redirectUrl=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3Dc%26d%3De+f",
        ),
    ],
)
def test_absent_fields_dropped_empty_strings_kept(state: OAuthState, decoded: str) -> None:
    assert _text(encode_state(state)) == decoded


@pytest.mark.parametrize(
    ("redirect_url", "wire"),
    [
        ("https://app.example.com/~user", "https%3A%2F%2Fapp.example.com%2F%7Euser"),
        ("https://app.example.com/*", "https%3A%2F%2Fapp.example.com%2F*"),
    ],
)
def test_form_encoding_matches_url_search_params(redirect_url: str, wire: str) -> None:
    # URLSearchParams leaves only ASCII alphanumerics and "*-._" unescaped.
    state = OAuthState(nonce="n", env="e", redirect_url=redirect_url)
    assert _text(encode_state(state)) == f"nonce=n&env=e&redirectUrl={wire}"


@pytest.mark.parametrize(
    "state",
    [
        OBSERVED_STATE,
        OAuthState(nonce="a+b/c==", env="production"),
        OAuthState(nonce="n", env="e", origin="", redirect_url="", flow="", scope=""),
        OAuthState(
            nonce="n&env=evil",
            env="dev=1&x",
            origin="https://app.example.com",
            redirect_url="https://app.example.com/path?q=1&r=%20#frag",
            flow="redirect",
            scope="openid profile email offline_access",
        ),
        OAuthState(nonce="ünïcödé ✓", env="日本", scope="a+b %41"),
        OAuthState(nonce="~*!'()", env="e", redirect_url="https://x/~u/*"),
    ],
)
def test_round_trip(state: OAuthState) -> None:
    assert decode_state(encode_state(state)) == state


def test_duplicate_fields_last_wins_like_object_from_entries() -> None:
    encoded = b"nonce=a&env=e&nonce=b".hex()
    assert decode_state(encoded).nonce == "b"


def test_unknown_fields_are_ignored() -> None:
    encoded = b"nonce=n&env=e&tenant=api&other=x".hex()
    assert decode_state(encoded) == OAuthState(nonce="n", env="e")


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "zz",
        "not hex at all",
        "6e6f6e63653d6e26656e763d65zz",  # valid pairs, then garbage
        "6e6f6e63653d6e26656e763d6",  # odd length
        b"\xff\xfe\xfd".hex(),  # not UTF-8
        b"nonce=n&env=\xff".hex(),
        b"nonce=n".hex(),
        b"nonce=n&env=".hex(),
        b"env=&nonce=n".hex(),
        b"".hex(),
    ],
)
def test_invalid_or_envless_state_is_missing_env(encoded: str) -> None:
    with pytest.raises(NotAllowedError) as info:
        decode_state(encoded)
    assert info.value.message == "OAuth state is invalid, missing env"
    assert info.value.status_code == 403
    assert info.value.name == "NotAllowedError"


@pytest.mark.parametrize(
    "decoded",
    [b"env=development", b"env=development&nonce=", b"nonce=&env=development&origin=x"],
)
def test_missing_nonce(decoded: bytes) -> None:
    with pytest.raises(NotAllowedError, match=r"^OAuth state is invalid, missing nonce$"):
        decode_state(decoded.hex())


@pytest.mark.parametrize("encoded", ["zz", "abc", b"\xff".hex()])
def test_decode_state_fields_undecodable_is_empty(encoded: str) -> None:
    assert decode_state_fields(encoded) == {}


def test_decode_state_fields_does_not_validate() -> None:
    assert decode_state_fields(b"flow=popup&origin=".hex()) == {"flow": "popup", "origin": ""}
