"""pods/log, exec, attach and portforward on the API server side, without nodes running:
the checks made before a node agent is dialled, as kubectl and the raw API see them (the
streams themselves: tests/e2e/test_stream.py on a whole cluster)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from svcnet.apiserver.auth import NODES_GROUP, TokenFile, User
from svcnet.apiserver.certs import issue_node_serving
from svcnet.node.server import NodeServer, ServingConfig
from tests.e2e.conftest import Cluster
from tests.fakenode import FakeHost


def pod(name: str, **spec: object) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"containers": [{"name": "app", "image": "x",
                                                    "command": ["sleep", "1"]}], **spec}})


def node(cluster: Cluster, name: str, status: dict[str, object]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
    cluster.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": status}))


def test_unscheduled_pods_have_no_logs_or_streams(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-waiting",
                                                  nodeSelector={"nowhere": "true"}))
    r = cluster.kubectl("logs", "st-waiting", check=False)
    assert "pod st-waiting does not have a host assigned" in r.stderr
    # kubectl tries a WebSocket, then SPDY: both get the same answer.
    r = cluster.kubectl("exec", "st-waiting", "--", "true", check=False)
    assert r.returncode != 0 and "pod st-waiting does not have a host assigned" in r.stderr
    r = cluster.kubectl("exec", "st-waiting", "-c", "nope", "--", "true", check=False)
    assert "container nope is not valid for pod st-waiting" in r.stderr


def test_a_node_that_does_not_advertise_its_agent(cluster: Cluster) -> None:
    node(cluster, "st-silent", {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]})
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-silent", nodeName="st-silent"))
    r = cluster.kubectl("logs", "st-silent", check=False)
    assert ("no preferred addresses found; node st-silent does not advertise its kubelet "
            "endpoint") in r.stderr


def test_a_node_agent_that_cannot_be_reached_is_a_502(cluster: Cluster) -> None:
    node(cluster, "st-gone", {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                              "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}})
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-gone", nodeName="st-gone"))
    r = cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/st-gone/log",
                        check=False)
    assert r.returncode != 0 and "error dialing backend: node st-gone" in r.stderr


def test_log_options_are_validated_first(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-opts", nodeSelector={"no": "x"}))
    base = "/api/v1/namespaces/default/pods/st-opts/log"
    r = cluster.kubectl("get", "--raw", f"{base}?tailLines=-1&limitBytes=0", check=False)
    assert r.stderr == ('The PodLogOptions "st-opts" is invalid: \n'
                        "* tailLines: Invalid value: -1: must be greater than or equal to 0\n"
                        "* limitBytes: Invalid value: 0: must be greater than 0\n")
    r = cluster.kubectl("get", "--raw", f"{base}?tailLines=x", check=False)
    assert 'parsing "x": invalid syntax' in r.stderr


def test_streams_need_create_on_the_subresource(cluster: Cluster) -> None:
    token = "st-node-token"
    TokenFile(cluster.data_dir / "tokens.csv").add(
        token, User("system:node:st-node", "", (NODES_GROUP,)))
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-auth", nodeSelector={"no": "x"}))
    for args in (["exec", "st-auth", "--", "true"], ["attach", "st-auth"]):
        r = cluster.kubectl("--token", token, *args, check=False, timeout=30)
        assert r.returncode != 0
        assert (f'User "system:node:st-node" cannot create resource "pods/{args[0]}"'
                in r.stderr), r.stderr
    # kubectl port-forward refuses a pod that is not Running by itself: ask the API.
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        f"{cluster.url}/api/v1/namespaces/default/pods/st-auth/portforward?ports=80",
        headers={"Authorization": f"Bearer {token}", "Connection": "Upgrade",
                 "Upgrade": "websocket"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=ctx, timeout=10)
    body = json.loads(err.value.read())
    err.value.close()
    assert err.value.code == 403
    assert 'cannot create resource "pods/portforward"' in body["message"]


def test_discovery_lists_the_stream_subresources(cluster: Cluster) -> None:
    r = cluster.kubectl("get", "--raw", "/api/v1")
    entries = {e["name"]: e for e in json.loads(r.stdout)["resources"]}
    for sub, kind in (("exec", "PodExecOptions"), ("attach", "PodAttachOptions"),
                      ("portforward", "PodPortForwardOptions")):
        assert entries[f"pods/{sub}"]["kind"] == kind
        assert entries[f"pods/{sub}"]["verbs"] == ["create", "get"]


def test_port_forward_ports_are_checked_before_the_node_is_dialled(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-ports", nodeSelector={"no": "x"}))
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    for query, message in (("ports=abc", 'unable to parse "abc" as a port: invalid syntax'),
                           ("ports=70000", "port 70000 must be > 0 and < 65536"),
                           ("", 'query parameter "ports" is required')):
        request = urllib.request.Request(
            f"{cluster.url}/api/v1/namespaces/default/pods/st-ports/portforward?{query}",
            headers={"Authorization": f"Bearer {cluster.token}", "Connection": "Upgrade",
                     "Upgrade": "websocket", "Sec-WebSocket-Protocol": "v4.channel.k8s.io"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, context=ctx, timeout=10)
        body = json.loads(err.value.read())
        err.value.close()
        assert (err.value.code, body["message"]) == (400, message)


# -- through to a node server (a fake runtime; no root) ---------------------------------------


@pytest.fixture
def fake_node(cluster: Cluster, tmp_path: Path) -> Iterator[FakeHost]:
    """Node ``st-fake`` with its agent's server on 127.0.0.1 (serving certificate from the
    cluster CA, as `svcnet up` issues), running pod ``st-fake`` (container ``app``)."""
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-fake", nodeName="st-fake"))
    obj = json.loads(cluster.kubectl("get", "pod", "st-fake", "-o", "json").stdout)
    host = FakeHost()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = NodeServer(host, lambda ns, name: obj if (ns, name) == ("default", "st-fake")
                        else None)
    cert, key = issue_node_serving(cluster.data_dir, "st-fake", ["127.0.0.1"],
                                   tmp_path / "node")
    ca = (cluster.data_dir / "pki" / "ca.crt").read_text()

    def call(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=10)

    call(host.run(obj["metadata"]["uid"], "app", tmp_path / "0.log", b"first\nsecond\n"))
    port = call(server.start(ServingConfig(cert, key, ca, "127.0.0.1", 0)))
    node(cluster, "st-fake", {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                              "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}})
    try:
        yield host
    finally:
        call(server.stop())
        call(asyncio.sleep(0.5))  # closed transports finish closing their sockets
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_logs_and_exec_reach_the_node_server(cluster: Cluster, fake_node: FakeHost) -> None:
    assert cluster.kubectl("logs", "st-fake").stdout == "first\nsecond\n"
    assert cluster.kubectl("logs", "st-fake", "--tail=1").stdout == "second\n"
    svcnet_logs = subprocess.run(
        [sys.executable, "-m", "svcnet.cli.main", "logs", "st-fake", "--tail", "1",
         "--kubeconfig", str(cluster.kubeconfig)], capture_output=True, text=True, timeout=60,
        check=False)
    assert svcnet_logs.stdout == "second\n", svcnet_logs.stderr
    r = cluster.kubectl("exec", "st-fake", "--", "sh", "-c", "echo $GREETING; exit 4",
                        check=False)
    assert (r.returncode, r.stdout) == (4, "hello\n")
    assert "command terminated with exit code 4" in r.stderr
    r = cluster.kubectl("exec", "-i", "st-fake", "--", "tr", "a-z", "A-Z", stdin="quiet\n")
    assert r.stdout == "QUIET\n"
    r = cluster.kubectl("attach", "-i", "st-fake", check=False, stdin="", timeout=30)
    assert "error: stdin cannot be attached" in r.stderr


def test_a_node_that_refuses_the_upgrade_is_reported(cluster: Cluster,
                                                     fake_node: FakeHost) -> None:
    # The node does not know the pod (its informer lags, say): it answers 404 to the upgrade.
    cluster.kubectl("apply", "-f", "-", stdin=pod("st-unknown", nodeName="st-fake"))
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        f"{cluster.url}/api/v1/namespaces/default/pods/st-unknown/portforward?ports=80",
        headers={"Authorization": f"Bearer {cluster.token}", "Connection": "Upgrade",
                 "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Protocol": "v4.channel.k8s.io"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=ctx, timeout=10)
    body = json.loads(err.value.read())
    err.value.close()
    assert err.value.code == 404
    assert body["message"].startswith("unable to upgrade connection: node st-fake answered 404")
