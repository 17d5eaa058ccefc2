"""A loopback HTTP server that serves Client ID Metadata Documents (and anything else a
test puts at a path), and records what was asked of it."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    send_length: bool = True  # False: no Content-Length, the body ends with the connection


class DocumentServer:
    def __init__(self, server: ThreadingHTTPServer, scheme: str = "http") -> None:
        self._server = server
        self.scheme = scheme
        self.replies: dict[str, Reply] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def document(self, path: str, document: Any, **headers: str) -> str:
        """Serves ``document`` as JSON at ``path``; returns its URL."""
        self.replies[path] = Reply(body=json.dumps(document).encode(), headers=headers)
        return self.url(path)

    def client_document(self, path: str = "/client.json", **fields: Any) -> str:
        url = self.url(path)
        document = {
            "client_id": url,
            "client_name": "Test MCP",
            "redirect_uris": ["http://127.0.0.1:9999/callback"],
            **fields,
        }
        self.document(path, {k: v for k, v in document.items() if v is not None})
        return url


@contextmanager
def document_server(tls: ssl.SSLContext | None = None) -> Iterator[DocumentServer]:
    holder: list[DocumentServer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state = holder[0]
            state.requests.append((self.path, dict(self.headers.items())))
            reply = state.replies.get(self.path, Reply(status=404, body=b"{}"))
            if reply.delay:
                time.sleep(reply.delay)
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            if not reply.send_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            elif "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            try:
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    holder.append(DocumentServer(server, "https" if tls else "http"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
