"""The certificate authorities outbound TLS trusts, from the environment.

* ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` replace the default bundle (as httpx, OpenSSL and
  Python read them); otherwise the default is certifi's public bundle.
* ``NODE_EXTRA_CA_CERTS`` (Node's meaning, so a Backstage deployment's environment works
  unchanged): a PEM file whose certificates are *added* to that trust, never replacing it.
  As in Node, an unreadable file is a warning and the default trust stays.

``description`` names what is trusted, for certificate errors and ``check-config``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import certifi

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trust:
    context: ssl.SSLContext
    description: str


def trust_from_environ(environ: Mapping[str, str]) -> Trust:
    if environ.get("SSL_CERT_FILE"):
        context = ssl.create_default_context(cafile=environ["SSL_CERT_FILE"])
        described = f"SSL_CERT_FILE={environ['SSL_CERT_FILE']}"
    elif environ.get("SSL_CERT_DIR"):
        context = ssl.create_default_context(capath=environ["SSL_CERT_DIR"])
        described = f"SSL_CERT_DIR={environ['SSL_CERT_DIR']}"
    else:
        context = ssl.create_default_context(cafile=certifi.where())
        described = f"the default bundle ({certifi.where()})"
    extra = environ.get("NODE_EXTRA_CA_CERTS")
    if extra:
        try:
            context.load_verify_locations(cafile=extra)
        except (OSError, ssl.SSLError) as exc:
            log.warning(
                "NODE_EXTRA_CA_CERTS=%s could not be read (%s); only %s is trusted",
                extra,
                exc,
                described,
            )
        else:
            described = f"{described} plus NODE_EXTRA_CA_CERTS={extra}"
    return Trust(context, described)
