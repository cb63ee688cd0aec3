"""Shared helpers: a local HTTP server that serves input and records what sinks post."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

import pytest


class RecordingServer:
    """Serves ``GET`` paths from ``pages`` (JSON) and records every ``POST``/``PUT`` body.
    ``answer(body) -> status`` decides each post's status (default 200)."""

    def __init__(self) -> None:
        self.pages: Dict[str, Any] = {}
        self.posts: List[Dict[str, Any]] = []
        self.answer: Optional[Callable[[bytes], int]] = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                page = server.pages.get(self.path)
                body = json.dumps(page).encode() if page is not None else b"{}"
                self.send_response(200 if page is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _post(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                status = server.answer(body) if server.answer else 200
                with server._lock:
                    server.posts.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "content_type": self.headers.get("content-type"),
                            "body": body.decode(),
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            do_POST = _post
            do_PUT = _post

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posted_rows(self, path: str) -> List[Any]:
        """Every row the sink posted to ``path`` and the server took (JSON arrays or lines)."""
        rows: List[Any] = []
        for p in self.posts:
            if p["path"] != path or p["status"] != 200:
                continue
            body = p["body"]
            if p["content_type"] == "application/x-ndjson":
                rows.extend(json.loads(line) for line in body.splitlines() if line)
            else:
                rows.extend(json.loads(body))
        return rows

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def http_server():
    server = RecordingServer()
    yield server
    server.close()
