"""The pods tests/e2e/test_stream.py and bench/stream.py run: one per node, each printing a
tick every 0.2 s (logs, attach), serving HTTP on 8080 and echoing TCP on 9000 (port-forward),
with an environment variable (exec sees the container's environment)."""

from __future__ import annotations

from typing import Any

import yaml

PROGRAM = """\
import http.server, socketserver, threading, time
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)
class Web(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello through port-forward\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
echo = socketserver.ThreadingTCPServer(("127.0.0.1", 9000), Echo)
threading.Thread(target=echo.serve_forever, daemon=True).start()
web = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Web)
threading.Thread(target=web.serve_forever, daemon=True).start()
print("started", flush=True)
n = 0
while True:
    n += 1
    print(f"tick {n}", flush=True)
    time.sleep(0.2)
"""

GREETING = "hello from the container"


def talker(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "talker"}},
            "spec": {"nodeName": node, "runtimeClassName": "process", "containers": [{
                "name": "talker", "image": "example/talker",
                "env": [{"name": "GREETING", "value": GREETING}],
                "ports": [{"containerPort": 8080}],
                "command": ["python3", "-u", "-c", PROGRAM]}]}}


def manifest() -> str:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "talker"},
               "spec": {"selector": {"app": "talker"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    return yaml.safe_dump_all([talker("talker-1", "node-1"), talker("talker-2", "node-2"),
                               service])
