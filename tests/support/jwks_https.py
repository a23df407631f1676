"""A real HTTPS key server in a thread, for tests that run `fe serve` as a separate process.

Serves JSON documents by path, counts requests per path, and can be switched to answer 500 ("down").
"""

from __future__ import annotations

import json
import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JwksHttpsServer:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.documents: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.down = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests[self.path] += 1
                body = owner.documents.get(self.path)
                if owner.down:
                    self._reply(500, b"down for maintenance")
                elif body is None:
                    self._reply(404, b"not found")
                else:
                    self._reply(200, body)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, document: Any) -> str:
        self.documents[path] = json.dumps(document).encode()
        return self.url(path)

    def start(self) -> JwksHttpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
