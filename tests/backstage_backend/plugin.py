"""A plugin of another backend (``tester``), found through ``discovery.endpoints``: its
keys at ``<base>/.backstage/auth/v1/jwks.json`` (requests counted), and the plugin tokens
it signs, well-formed or not, to call our server with."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from tests.support.oidc_provider import free_port

PEER = "tester"
# Another plugin on the same host whose key endpoint answers garbage.
BROKEN = "broken"
PLUGIN_TYPE = "vnd.backstage.plugin"


@dataclass
class PeerPlugin:
    base: str
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", {"kid": "tester-1"}))
    requests: list[str] = field(default_factory=list)

    def token(self, *, sub: str = PEER, aud: Any = "auth", ttl: int = 600, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": sub, "aud": aud, "iat": now, "exp": now + ttl, **claims}
        header = {"typ": PLUGIN_TYPE, "alg": "ES256", "kid": "tester-1"}
        return jwt.encode(header, body, self.key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}


@contextmanager
def peer_plugin() -> Iterator[PeerPlugin]:
    port = free_port()
    plugin = PeerPlugin(f"http://127.0.0.1:{port}/api/{{{{pluginId}}}}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            plugin.requests.append(self.path)
            if self.path == f"/api/{PEER}/.backstage/auth/v1/jwks.json":
                body = json.dumps(plugin.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            elif self.path == f"/api/{BROKEN}/.backstage/auth/v1/jwks.json":
                body = b'{"keys": [{"kty": "EC", "crv": "P-256", "x": 5}], '
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            else:
                body = b"{}"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield plugin
    finally:
        server.shutdown()
        server.server_close()
