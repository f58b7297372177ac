"""A stand-in API server that records what kubectl sends (for the protobuf tests).

It answers every write with the body it was sent (kubectl reads that back as the created
object) and every read with a 404 Status, over plain HTTP on loopback. Nothing here knows
Kubernetes' messages: the bodies are what the real kubectl wrote.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_NOT_FOUND = (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
              b'"message":"not found","reason":"NotFound","code":404}')


@dataclass
class Sent:
    method: str
    path: str
    content_type: str
    body: bytes


@dataclass
class Recorder:
    kubeconfig: Path
    sent: list[Sent] = field(default_factory=list)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.sent.clear()
        return subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60, check=False)

    def writes(self) -> list[Sent]:
        return [s for s in self.sent if s.method in ("POST", "PUT")]


@contextmanager
def recorder(tmp: Path) -> Iterator[Recorder]:
    rec = Recorder(tmp / "kubeconfig")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(size) if size else b""
            ctype = self.headers.get("Content-Type", "")
            rec.sent.append(Sent(self.command, self.path, ctype, body))
            if self.command in ("POST", "PUT") and body:
                self.send_response(201)
                self.send_header("Content-Type", ctype)
                out = body
            else:
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                out = _NOT_FOUND
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rec\n  cluster:\n"
        f"    server: http://127.0.0.1:{server.server_address[1]}\n"
        "contexts:\n- name: rec\n  context: {cluster: rec, user: rec, namespace: default}\n"
        "current-context: rec\nusers:\n- name: rec\n  user: {token: svcnet-recorder}\n")
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
