"""What the proxy providers need to read a request and decide whom to trust.

* ``header`` (case-insensitive name) and ``cookie`` reads from a ``ProxyRequest``.
* ``TrustedProxies``, ``HeaderTrustSettings``: the peer-address allow-list
  (``trustedProxies``) of the providers that trust headers without a signature
  (``oauth2Proxy``, ``azureEasyAuth``); without it they refuse every request.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any, TypeAlias

from pydantic import field_validator

from app.config.validation import Lenient
from app.core.errors import AuthenticationError
from app.providers.base import ProxyRequest
from app.providers.settings import SignInSettings

log = logging.getLogger(__name__)

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def header(request: ProxyRequest, name: str) -> str | None:
    """A request header, by case-insensitive name."""
    wanted = name.lower()
    for key, value in request.headers.items():
        if key.lower() == wanted:
            return value
    return None


def cookie(request: ProxyRequest, name: str) -> str | None:
    value = request.cookies.get(name)
    return value if value else None


def parse_networks(values: str | Sequence[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses; a string may list several, comma-separated.

    Raises:
        ValueError: naming the entry that is not an address or network.
    """
    items = values.split(",") if isinstance(values, str) else list(values)
    networks: list[Network] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if not isinstance(text, str) or not text:
            raise ValueError(f"{item!r} is not an IP address or CIDR")
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an IP address or CIDR") from exc
    return tuple(networks)


class TrustedProxies:
    """Which peers may assert identity through plain headers.

    A provider that trusts unsigned headers accepts them only from the proxy that sets
    them; anyone who can reach the server directly could otherwise send them. With no
    configured proxies, every request is refused.
    """

    def __init__(self, networks: Sequence[Network] | None, *, config_path: str) -> None:
        self._networks = tuple(networks or ())
        self._config_path = config_path

    @property
    def configured(self) -> bool:
        return bool(self._networks)

    def check(self, client_host: str | None, *, headers_what: str) -> None:
        """Raises AuthenticationError unless ``client_host`` is a trusted proxy."""
        key = f"{self._config_path}.trustedProxies"
        if not self._networks:
            raise AuthenticationError(
                f"This provider trusts {headers_what} only from the proxies listed in "
                f"'{key}', and none is configured; set it to the address or CIDR of the "
                'proxy in front of this server (e.g. ["10.0.0.0/8"])'
            )
        address = _ip(client_host)
        if address is None or not any(address in network for network in self._networks):
            raise AuthenticationError(
                f"Request refused: {headers_what} are trusted only from the proxies in "
                f"'{key}', and this request came from {client_host or 'an unknown address'}"
            )


class HeaderTrustSettings(Lenient):
    """Config of the providers that trust unsigned headers (``oauth2Proxy``, ``azureEasyAuth``)."""

    # Ours: the direct peers allowed to assert identity (addresses or CIDRs).
    trustedProxies: tuple[Network, ...] = ()
    signIn: SignInSettings | None = None

    @field_validator("trustedProxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[Network, ...]:
        if value is None:
            return ()
        if not isinstance(value, str | list | tuple):
            raise ValueError("must be a list of IP addresses or CIDRs")
        return parse_networks(value)


def build_trusted_proxies(
    settings: HeaderTrustSettings, path: str, provider: str
) -> TrustedProxies:
    """The provider's ``TrustedProxies``; warns at startup when none is configured."""
    if not settings.trustedProxies:
        log.warning(
            "%s.trustedProxies is not set: every %s sign-in is refused until it lists the "
            "proxies allowed to send identity headers",
            path,
            provider,
        )
    return TrustedProxies(settings.trustedProxies, config_path=path)


def _ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
