"""app.oauth.flow_secrets: per-sign-in PKCE verifier and OIDC nonce."""

from __future__ import annotations

import base64
import hashlib
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from app.oauth.flow_secrets import derive_flow_secrets

KEY = b"k" * 32
# RFC 7636 4.1: 43..128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~";
# 32 bytes of base64url without padding is exactly 43 of [A-Za-z0-9_-].
BASE64URL_43 = re.compile(r"[A-Za-z0-9_-]{43}")
RFC7636_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def test_deterministic_per_key_and_nonce() -> None:
    assert derive_flow_secrets(KEY, "nonce-1") == derive_flow_secrets(KEY, "nonce-1")


def test_different_nonce_gives_different_secrets() -> None:
    a = derive_flow_secrets(KEY, "nonce-1")
    b = derive_flow_secrets(KEY, "nonce-2")
    assert a.code_verifier != b.code_verifier
    assert a.oidc_nonce != b.oidc_nonce


def test_different_key_gives_different_secrets() -> None:
    a = derive_flow_secrets(KEY, "nonce-1")
    b = derive_flow_secrets(b"j" * 32, "nonce-1")
    assert a.code_verifier != b.code_verifier
    assert a.oidc_nonce != b.oidc_nonce


def test_verifier_and_oidc_nonce_are_independent() -> None:
    s = derive_flow_secrets(KEY, "nonce-1")
    assert s.code_verifier != s.oidc_nonce


def test_shape() -> None:
    s = derive_flow_secrets(KEY, "OGZeh2QpDuqiOYyEC31f3A==")
    assert BASE64URL_43.fullmatch(s.code_verifier)
    assert RFC7636_VERIFIER.fullmatch(s.code_verifier)
    assert BASE64URL_43.fullmatch(s.oidc_nonce)
    assert len(base64.urlsafe_b64decode(s.code_verifier + "=")) == 32
    # The S256 challenge is base64url(sha256(verifier)) without padding: 43 chars too.
    challenge = base64.urlsafe_b64encode(hashlib.sha256(s.code_verifier.encode()).digest())
    assert BASE64URL_43.fullmatch(challenge.rstrip(b"=").decode())


@settings(max_examples=100, deadline=None)
@given(key=st.binary(min_size=1, max_size=64), nonce=st.text(max_size=64))
def test_shape_for_any_key_and_nonce(key: bytes, nonce: str) -> None:
    s = derive_flow_secrets(key, nonce)
    assert BASE64URL_43.fullmatch(s.code_verifier)
    assert BASE64URL_43.fullmatch(s.oidc_nonce)
    assert s == derive_flow_secrets(key, nonce)
