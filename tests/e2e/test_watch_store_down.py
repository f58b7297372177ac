"""A watch on `svcnet server --store etcd://...` when etcd goes away: before the stream starts
the answer is one Status response; a stream already running carries only watch events (an
ERROR event with a Status, or a clean end) and then ends, never a second HTTP response."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.etcd_server import EtcdServer

SVC = "/api/v1/namespaces/default/services"


def connect(data_dir: Path, timeout: float) -> tuple[http.client.HTTPSConnection,
                                                     dict[str, str]]:
    cfg = yaml.safe_load((data_dir / "kubeconfig").read_text())
    url = urlsplit(cfg["clusters"][0]["cluster"]["server"])
    ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=ctx,
                                       timeout=timeout)
    return conn, {"Authorization": f"Bearer {cfg['users'][0]['user']['token']}"}


def read_events(resp: http.client.HTTPResponse, deadline: float) -> list[Any]:
    """Every line of a watch stream until it ends, each parsed as one JSON watch event."""
    events: list[Any] = []
    while time.monotonic() < deadline:
        line = resp.readline()
        if not line:
            return events
        events.append(json.loads(line))  # a stray HTTP response would fail here
    raise AssertionError(f"the watch did not end; events so far: {events}")


def test_watch_when_etcd_goes_away(tmp_path: Path, etcd: EtcdServer) -> None:
    proc = start_server(tmp_path, "--store", f"etcd://{etcd.endpoint}/svcnet-hw-watch/")
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache")
        listed = json.loads(cluster.kubectl("get", "svc", "-o", "json").stdout)
        rv = listed["metadata"]["resourceVersion"]

        conn, headers = connect(tmp_path, timeout=30)
        conn.request("GET", f"{SVC}?watch=true&resourceVersion={rv}&timeoutSeconds=60",
                     headers=headers)
        running = conn.getresponse()
        assert running.status == 200
        etcd.stop()
        events = read_events(running, time.monotonic() + 30)
        conn.close()
        errors = [e for e in events if e["type"] == "ERROR"]
        assert errors in ([], events[-1:]), events  # at most one, and it ends the stream
        assert all(e["object"]["kind"] == "Status" and e["object"]["code"] >= 500
                   for e in errors), events

        conn, headers = connect(tmp_path, timeout=30)
        conn.request("GET", f"{SVC}?watch=true&resourceVersion={rv}&timeoutSeconds=60",
                     headers=headers)
        refused = conn.getresponse()
        body = refused.read()
        conn.close()
        assert refused.status >= 500, body
        status = json.loads(body)  # one Status document, not a stream
        assert status["kind"] == "Status" and status["code"] == refused.status, status
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
    finally:
        assert stop_server(proc) == 0, (tmp_path / "server.log").read_text()[-3000:]
