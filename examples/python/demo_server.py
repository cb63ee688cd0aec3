"""A local stand-in for the REST endpoints the examples use (the seed's
``http://localhost:8080``): ``GET /data`` answers a JSON array of sensor readings (new ones at
each request, event times advancing by one second per reading), ``POST /result`` prints what a
job sends.

    python examples/python/demo_server.py            # port 8080
    python examples/python/demo_server.py --port 9000
"""

from __future__ import annotations

import argparse
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Readings:
    """Deterministic readings: ``per_request`` at each GET, one second apart."""

    def __init__(self, per_request: int = 20, seed: int = 42):
        self.per_request = per_request
        self.rnd = random.Random(seed)
        self.next = 0
        self.lock = threading.Lock()

    def batch(self) -> list:
        with self.lock:
            out = []
            for _ in range(self.per_request):
                out.append(
                    {
                        "field1": f"sensor-{self.rnd.randrange(4)}",
                        "temperature": round(15 + self.rnd.random() * 10, 2),
                        "ts": START_MS + self.next * 1000,
                    }
                )
                self.next += 1
            return out


def serve(port: int) -> None:
    readings = Readings()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps(readings.batch()).encode() if self.path == "/data" else b"[]"
            self.send_response(200 if self.path == "/data" else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            for row in json.loads(body or b"[]"):
                print(f"{self.path}: {json.dumps(row)}", flush=True)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"serving http://127.0.0.1:{port}/data, printing posts to /result", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    serve(parser.parse_args().port)
