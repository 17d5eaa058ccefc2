"""A tiny HTTPS server under a test certificate authority, in a thread: what an identity
provider behind a private CA looks like to the outbound transport (every GET is ``{}``)."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme


class _JsonHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def tls_metadata_server(ca: trustme.CA) -> Iterator[str]:
    """The URL of a discovery document at ``https://localhost:<port>``, its certificate
    issued by ``ca``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JsonHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/.well-known/openid-configuration"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
