"""``svcnet apply|get|delete|describe`` against a real `svcnet server`, run as a user runs them.

Each call is a subprocess (``python -m svcnet.cli.main ... --kubeconfig FILE``) so exit codes,
stdout and stderr are exactly what a shell sees. Objects are named ``cli-*`` so these tests stay
independent of the other end-to-end tests sharing the session's server. Where kubectl is
installed, a few outputs are also compared byte for byte with kubectl's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import SERVICES, PatchType, RESTClient
from tests.conftest import require_binary
from tests.e2e.conftest import ROOT, Cluster
from tests.waiting import wait_for

Obj = dict[str, Any]


def svcnet(cluster: Cluster | None, *args: str, stdin: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``svcnet ARGS --kubeconfig <cluster's>`` (no --kubeconfig when cluster is None)."""
    extra = ["--kubeconfig", str(cluster.kubeconfig)] if cluster is not None else []
    return subprocess.run([sys.executable, "-m", "svcnet.cli.main", *args, *extra],
                          input=stdin, capture_output=True, text=True, cwd=ROOT,
                          env=env if env is not None else dict(os.environ), timeout=60,
                          check=False)


def ok(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    r = svcnet(cluster, *args, stdin=stdin)
    assert r.returncode == 0, f"svcnet {' '.join(args)} failed ({r.returncode}):\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def service(name: str, *, port: int = 80, target: int | str = 8080, extra: str = "",
            svc_type: str = "ClusterIP", selector: bool = True) -> str:
    """A Service manifest; without a selector no controller manages its EndpointSlices."""
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata:
          name: {name}
          labels: {{app: {name}, suite: cli}}
        spec:
          type: {svc_type}
          {f"selector: {{app: {name}}}" if selector else ""}
          ports:
          - name: http
            port: {port}
            targetPort: {json.dumps(target)}
        """) + extra


def get_json(cluster: Cluster, kind: str, name: str) -> Obj:
    obj: Obj = json.loads(ok(cluster, "get", kind, name, "-o", "json"))
    return obj


# ========================================================================= apply and get


def test_apply_reports_created_unchanged_configured(cluster: Cluster) -> None:
    assert ok(cluster, "apply", "-f", "-", stdin=service("cli-web")) == \
        "service/cli-web created\n"
    assert ok(cluster, "apply", "-f", "-", stdin=service("cli-web")) == \
        "service/cli-web unchanged\n"
    assert ok(cluster, "apply", "-f", "-", stdin=service("cli-web", target=9090)) == \
        "service/cli-web configured\n"
    assert get_json(cluster, "svc", "cli-web")["spec"]["ports"][0]["targetPort"] == 9090


def test_apply_many_documents_and_files(cluster: Cluster, tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(service("cli-multi-a") + "---\n" + service("cli-multi-b"))
    second.write_text(json.dumps(yaml.safe_load(service("cli-multi-c"))))
    assert ok(cluster, "apply", "-f", str(first), "-f", str(second)) == (
        "service/cli-multi-a created\nservice/cli-multi-b created\nservice/cli-multi-c created\n")
    assert ok(cluster, "apply", "-f", str(first)) == (
        "service/cli-multi-a unchanged\nservice/cli-multi-b unchanged\n")


def test_get_table_name_json_yaml(cluster: Cluster) -> None:
    ok(cluster, "apply", "-f", "-", stdin=service("cli-get"))
    obj = get_json(cluster, "svc", "cli-get")
    ip = obj["spec"]["clusterIP"]

    table = ok(cluster, "get", "svc", "cli-get").splitlines()
    assert len(table) == 2
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:5] == ["cli-get", "ClusterIP", ip, "<none>", "80/TCP"]
    # Aligned like kubectl: each cell starts under its header, three spaces after the widest.
    assert table[0].index("TYPE") == table[1].index("ClusterIP") == len("cli-get") + 3
    assert table[0].index("CLUSTER-IP") == table[1].index(ip)

    wide = ok(cluster, "get", "service", "cli-get", "-o", "wide").splitlines()
    assert wide[0].split()[-1] == "SELECTOR" and wide[1].split()[-1] == "app=cli-get"

    assert ok(cluster, "get", "services", "cli-get", "-o", "name") == "service/cli-get\n"
    assert ok(cluster, "get", "svc/cli-get", "-o", "name") == "service/cli-get\n"
    assert obj["kind"] == "Service" and obj["spec"]["clusterIPs"] == [ip]
    assert "managedFields" not in obj["metadata"], "hidden, as kubectl hides them"
    as_yaml = yaml.safe_load(ok(cluster, "get", "Service", "cli-get", "-o", "yaml"))
    assert as_yaml == obj


def test_get_lists_with_selector_and_all_namespaces(cluster: Cluster) -> None:
    for name in ("cli-sel-b", "cli-sel-a"):
        ok(cluster, "apply", "-f", "-", stdin=service(name, extra="").replace(
            "suite: cli", "suite: cli, tier: cli-t1"))
    assert ok(cluster, "get", "svc", "-l", "tier=cli-t1", "-o", "name").splitlines() == [
        "service/cli-sel-a", "service/cli-sel-b"]
    rows = ok(cluster, "get", "svc", "-l", "tier=cli-t1").splitlines()
    assert [line.split()[0] for line in rows] == ["NAME", "cli-sel-a", "cli-sel-b"]

    listed = json.loads(ok(cluster, "get", "svc", "-l", "tier=cli-t1", "-o", "json"))
    assert listed["kind"] == "List" and listed["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["cli-sel-a", "cli-sel-b"]
    assert all(i["kind"] == "Service" for i in listed["items"])

    everywhere = ok(cluster, "get", "svc", "-A").splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert ["default", "kubernetes"] in [line.split()[:2] for line in everywhere]

    namespaces = ok(cluster, "get", "ns", "-A").splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"], "cluster-scoped: no NAMESPACE"
    assert {"default", "kube-system"} <= {line.split()[0] for line in namespaces[1:]}


def test_get_nothing_found(cluster: Cluster) -> None:
    r = svcnet(cluster, "get", "svc", "-l", "app=cli-nothing")
    assert (r.returncode, r.stdout, r.stderr) == (
        0, "", "No resources found in default namespace.\n")
    r = svcnet(cluster, "get", "svc", "-l", "app=cli-nothing", "-n", "kube-public")
    assert r.stderr == "No resources found in kube-public namespace.\n"
    r = svcnet(cluster, "get", "svc", "-A", "-l", "app=cli-nothing")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "No resources found\n")
    empty = json.loads(ok(cluster, "get", "svc", "-l", "app=cli-nothing", "-o", "json"))
    assert empty == {"apiVersion": "v1", "items": [], "kind": "List",
                     "metadata": {"resourceVersion": ""}}
    assert ok(cluster, "get", "svc", "-l", "app=cli-nothing", "-o", "name") == ""


def test_get_missing_object_is_an_error(cluster: Cluster) -> None:
    r = svcnet(cluster, "get", "svc", "cli-absent")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == 'Error from server (NotFound): services "cli-absent" not found\n'


# ============================================================================== describe


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_fixture(cluster: Cluster) -> Obj:
    """Service cli-desc (no selector, so no controller owns its EndpointSlices), a slice with
    ready, not-ready and unknown endpoints, and one Event about the Service an hour old."""
    svc = service("cli-desc", selector=False,
                  extra="  - name: dns\n    port: 53\n    protocol: UDP\n    targetPort: 5353\n")
    svc = svc.replace("labels:", "annotations: {note: hello}\n  labels:")
    slice_ = textwrap.dedent("""\
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: cli-desc-1
          labels: {kubernetes.io/service-name: cli-desc}
        addressType: IPv4
        ports:
        - {name: http, port: 8080, protocol: TCP}
        - {name: dns, port: 5353, protocol: UDP}
        endpoints:
        - {addresses: [10.244.1.5], conditions: {ready: true}}
        - {addresses: [10.244.1.6], conditions: {ready: false}}
        - {addresses: [10.244.2.7]}
        """)
    ok(cluster, "apply", "-f", "-", stdin=svc + "---\n" + slice_)
    obj = get_json(cluster, "svc", "cli-desc")
    # Re-stamped on every call: 60.5 minutes ago prints as "60m" for the next half minute.
    hour_ago = stamp(datetime.now(UTC) - timedelta(minutes=60, seconds=30))
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "cli-desc.1", "namespace": "default"},
             "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "cli-desc",
                                "namespace": "default", "uid": obj["metadata"]["uid"]},
             "reason": "Tested", "message": "hello", "type": "Normal",
             "source": {"component": "cli-test"}, "count": 1,
             "firstTimestamp": hour_ago, "lastTimestamp": hour_ago}
    assert ok(cluster, "apply", "-f", "-", stdin=json.dumps(event)) in (
        "event/cli-desc.1 created\n", "event/cli-desc.1 configured\n",
        "event/cli-desc.1 unchanged\n")
    return obj


def test_describe_service(cluster: Cluster) -> None:
    obj = describe_fixture(cluster)
    ip = obj["spec"]["clusterIP"]
    out = ok(cluster, "describe", "svc", "cli-desc")
    label = 26  # "Internal Traffic Policy:" and two spaces
    expected = [
        ("Name:", "cli-desc"), ("Namespace:", "default"), ("Labels:", "app=cli-desc"),
        ("", "suite=cli"), ("Annotations:", "note: hello"), ("Selector:", "<none>"),
        ("Type:", "ClusterIP"), ("IP Family Policy:", "SingleStack"), ("IP Families:", "IPv4"),
        ("IP:", ip), ("IPs:", ip),
        ("Port:", "http  80/TCP"), ("TargetPort:", "8080/TCP"),
        ("Endpoints:", "10.244.1.5:8080,10.244.2.7:8080"),
        ("Port:", "dns  53/UDP"), ("TargetPort:", "5353/UDP"),
        ("Endpoints:", "10.244.1.5:5353,10.244.2.7:5353"),
        ("Session Affinity:", "None"), ("Internal Traffic Policy:", "Cluster")]
    assert out == "".join(f"{k:<{label}}{v}\n" for k, v in expected) + (
        "Events:\n"
        "  Type    Reason  Age   From      Message\n"
        "  ----    ------  ----  ----      -------\n"
        "  Normal  Tested  60m   cli-test  hello\n")


def test_describe_load_balancer_and_node_port(cluster: Cluster) -> None:
    ok(cluster, "apply", "-f", "-",
       stdin=service("cli-lb", svc_type="LoadBalancer", selector=False))

    def ingress() -> list[Obj]:
        found: list[Obj] = get_json(cluster, "svc", "cli-lb").get("status", {}).get(
            "loadBalancer", {}).get("ingress", [])
        return found

    wait_for(ingress, "a LoadBalancer IP for cli-lb")
    first = ingress()[0]
    shown = f"{first['ip']} ({first['ipMode']})" if first.get("ipMode") else first["ip"]
    node_port = get_json(cluster, "svc", "cli-lb")["spec"]["ports"][0]["nodePort"]
    lines = ok(cluster, "describe", "service", "cli-lb").splitlines()
    assert "Type:                     LoadBalancer" in lines
    assert f"LoadBalancer Ingress:     {shown}" in lines
    assert f"NodePort:                 http  {node_port}/TCP" in lines
    assert "External Traffic Policy:  Cluster" in lines
    assert "Endpoints:                <none>" in lines


def test_describe_other_kinds(cluster: Cluster) -> None:
    describe_fixture(cluster)
    slice_text = ok(cluster, "describe", "endpointslice", "cli-desc-1")
    assert slice_text.startswith("Name:         cli-desc-1\nNamespace:    default\n")
    assert "  http  8080  TCP\n" in slice_text and "  - Addresses:  10.244.1.6\n" in slice_text
    ns_text = ok(cluster, "describe", "ns", "kube-system")
    assert ns_text == ("Name:         kube-system\n"
                       "Labels:       kubernetes.io/metadata.name=kube-system\n"
                       "Annotations:  <none>\n"
                       "Status:       Active\n"
                       "\n"
                       "No resource quota.\n"
                       "\n"
                       "No LimitRange resource.\n")
    event_text = ok(cluster, "describe", "ev", "cli-desc.1")
    assert "Reason:" in event_text and "Involved Object:\n" in event_text


def test_describe_missing_object(cluster: Cluster) -> None:
    r = svcnet(cluster, "describe", "svc", "cli-absent")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == 'Error from server (NotFound): services "cli-absent" not found\n'


# ================================================================================ delete


def test_delete_by_name_and_file(cluster: Cluster, tmp_path: Path) -> None:
    ok(cluster, "apply", "-f", "-", stdin=service("cli-del"))
    assert ok(cluster, "delete", "svc", "cli-del") == 'service "cli-del" deleted\n'
    r = svcnet(cluster, "delete", "svc", "cli-del")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == 'Error from server (NotFound): services "cli-del" not found\n'
    assert ok(cluster, "delete", "svc", "cli-del", "--ignore-not-found") == ""

    manifest = tmp_path / "del.yaml"
    manifest.write_text(service("cli-del-a") + "---\n" + service("cli-del-b"))
    ok(cluster, "apply", "-f", str(manifest))
    assert ok(cluster, "delete", "-f", str(manifest)) == (
        'service "cli-del-a" deleted\nservice "cli-del-b" deleted\n')
    r = svcnet(cluster, "delete", "-f", str(manifest))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f'Error from server (NotFound): error when deleting "{manifest}": services '
        f'"{name}" not found' for name in ("cli-del-a", "cli-del-b")]


def test_delete_by_selector(cluster: Cluster) -> None:
    for name in ("cli-lab-1", "cli-lab-2"):
        ok(cluster, "apply", "-f", "-", stdin=service(name).replace("suite: cli", "suite: lab"))
    assert ok(cluster, "delete", "svc", "-l", "suite=lab") == (
        'service "cli-lab-1" deleted\nservice "cli-lab-2" deleted\n')
    assert ok(cluster, "get", "svc", "-l", "suite=lab", "-o", "name") == ""


# ================================================================================ errors


def test_invalid_service_is_reported_like_kubectl(cluster: Cluster) -> None:
    r = svcnet(cluster, "apply", "-f", "-", stdin=service("cli-bad", port=0))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ('The Service "cli-bad" is invalid: spec.ports[0].port: Invalid value: '
                        "0: must be between 1 and 65535, inclusive\n")
    r = svcnet(cluster, "apply", "-f", "-", stdin=service("cli-bad2", port=0, target=0))
    assert r.returncode == 1
    assert r.stderr == (
        'The Service "cli-bad2" is invalid: \n'
        "* spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive\n"
        "* spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive\n")
    assert svcnet(cluster, "get", "svc", "cli-bad").returncode == 1, "nothing stored"


def test_apply_goes_on_after_a_bad_object(cluster: Cluster) -> None:
    both = service("cli-bad3", port=0) + "---\n" + service("cli-good")
    r = svcnet(cluster, "apply", "-f", "-", stdin=both)
    assert r.returncode == 1
    assert r.stdout == "service/cli-good created\n"
    assert r.stderr.startswith('The Service "cli-bad3" is invalid: ')


def test_unknown_field_is_rejected(cluster: Cluster) -> None:
    r = svcnet(cluster, "apply", "-f", "-",
               stdin=service("cli-typo").replace("selector:", "selectr:"))
    assert r.returncode == 1
    assert 'strict decoding error: unknown field "spec.selectr"' in r.stderr
    assert r.stderr.startswith("Error from server (BadRequest): ")


def test_field_conflict_needs_force(cluster: Cluster) -> None:
    ok(cluster, "apply", "-f", "-", stdin=service("cli-owned"))
    # Another writer takes the targetPort over with an ordinary patch ...
    ports = get_json(cluster, "svc", "cli-owned")["spec"]["ports"]
    ports[0]["targetPort"] = 7070
    asyncio.run(patch_as(cluster, "other-writer", "cli-owned", {"spec": {"ports": ports}}))
    # ... so applying another value conflicts, until forced.
    r = svcnet(cluster, "apply", "-f", "-", stdin=service("cli-owned", target=9090))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("error: Apply failed with 1 conflict: conflict with "
                               '"other-writer"')
    assert r.stderr.endswith("(run again with --force-conflicts to take these fields over, "
                             "or remove them from the manifest)\n")
    assert ok(cluster, "apply", "--force-conflicts", "-f", "-",
              stdin=service("cli-owned", target=9090)) == "service/cli-owned configured\n"
    assert get_json(cluster, "svc", "cli-owned")["spec"]["ports"][0]["targetPort"] == 9090


async def patch_as(cluster: Cluster, manager: str, name: str, patch: Obj) -> None:
    async with RESTClient.from_kubeconfig(load_kubeconfig(cluster.kubeconfig)) as client:
        await client.patch(SERVICES, "default", name, patch, patch_type=PatchType.MERGE,
                           field_manager=manager)


@pytest.mark.parametrize(("args", "message"), [
    (("get", "foo"), 'error: the server doesn\'t have a resource type "foo"'),
    (("describe", "widgets", "x"), 'error: the server doesn\'t have a resource type "widgets"'),
    (("delete", "foo", "x"), 'error: the server doesn\'t have a resource type "foo"'),
    (("get", "svc", "x", "-A"),
     "error: a resource cannot be retrieved by name across all namespaces"),
    (("delete", "svc"), "error: resource(s) were provided, but no name was specified"),
    (("delete",), "error: You must provide one or more resources by argument or filename."),
])
def test_usage_mistakes_fail_in_one_line(cluster: Cluster, args: tuple[str, ...],
                                         message: str) -> None:
    r = svcnet(cluster, *args)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", message + "\n")


def test_manifest_of_unknown_kind(cluster: Cluster) -> None:
    r = svcnet(cluster, "apply", "-f", "-",
               stdin="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ('error: resource mapping not found for name: "w" namespace: "" from '
                        '"STDIN": no matches for kind "Widget" in version "example.com/v1"\n')


def test_unreadable_manifest(cluster: Cluster, tmp_path: Path) -> None:
    r = svcnet(cluster, "apply", "-f", str(tmp_path / "absent.yaml"))
    assert r.returncode == 1
    assert r.stderr == f"error: cannot read {tmp_path / 'absent.yaml'}: No such file or directory\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_server_fails_in_one_line(cluster: Cluster, tmp_path: Path) -> None:
    port = free_port()
    dead = tmp_path / "kubeconfig"
    dead.write_text(cluster.kubeconfig.read_text().replace(
        cluster.url, f"https://127.0.0.1:{port}"))
    for args in (("get", "svc"), ("apply", "-f", "-"), ("describe", "svc", "x"),
                 ("delete", "svc", "x")):
        r = subprocess.run([sys.executable, "-m", "svcnet.cli.main", *args, "--kubeconfig",
                            str(dead)], input=service("cli-x"), capture_output=True, text=True,
                           cwd=ROOT, timeout=60, check=False)
        assert (r.returncode, r.stdout) == (1, ""), args
        assert r.stderr == (f"error: cannot reach the API server at https://127.0.0.1:{port}: "
                            "Connection refused\n"), args
    debug = subprocess.run([sys.executable, "-m", "svcnet.cli.main", "--debug", "get", "svc",
                            "--kubeconfig", str(dead)], capture_output=True, text=True,
                           cwd=ROOT, timeout=60, check=False)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and debug.stderr.endswith("Connection refused\n")


def test_kubeconfig_from_environment_then_default_cluster(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), HOME=str(tmp_path))
    r = svcnet(None, "get", "svc", "kubernetes", "-o", "name", env=env)
    assert (r.returncode, r.stdout) == (0, "service/kubernetes\n")

    env.pop("KUBECONFIG")
    r = svcnet(None, "get", "svc", "kubernetes", "-o", "name", env=env)
    default = tmp_path / ".svcnet" / "svcnet" / "kubeconfig"
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"error: cannot read kubeconfig {default}: No such file or directory "
                        "(start a cluster with `svcnet up`, or pass --kubeconfig)\n")
    default.parent.mkdir(parents=True)
    shutil.copy(cluster.kubeconfig, default)
    r = svcnet(None, "get", "svc", "kubernetes", "-o", "name", env=env)
    assert (r.returncode, r.stdout) == (0, "service/kubernetes\n")


@pytest.mark.parametrize("command", ["apply", "get", "delete", "describe"])
def test_help(command: str) -> None:
    r = svcnet(None, command, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"Usage: python -m svcnet.cli.main {command} [OPTIONS]")
    assert "--kubeconfig" in r.stdout and "-n, --namespace" in r.stdout


# ================================================================ byte-for-byte with kubectl


def test_same_output_as_kubectl(cluster: Cluster) -> None:
    require_binary("kubectl")
    describe_fixture(cluster)
    # A namespace with a quota (with a scope) and a limit range: describe ns lists both.
    limited = textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: cli-limited}
        ---
        apiVersion: v1
        kind: ResourceQuota
        metadata: {name: compute, namespace: cli-limited}
        spec:
          hard: {pods: "4", requests.cpu: "2", limits.memory: 1Gi}
          scopes: [NotBestEffort]
        ---
        apiVersion: v1
        kind: LimitRange
        metadata: {name: defaults, namespace: cli-limited}
        spec:
          limits:
          - {type: Container, max: {cpu: "2"}, min: {cpu: 50m}, default: {cpu: 500m},
             defaultRequest: {cpu: 100m}, maxLimitRequestRatio: {cpu: "4"}}
          - {type: Pod, max: {memory: 2Gi}}
        """)
    ok(cluster, "apply", "-f", "-", stdin=limited)
    wait_for(lambda: json.loads(cluster.kubectl(
        "get", "quota", "compute", "-n", "cli-limited", "-o", "json").stdout).get(
        "status", {}).get("used"), "the quota controller's status of cli-limited/compute")
    differences = []
    for args in (("describe", "svc", "cli-desc"),
                 ("describe", "endpointslice", "cli-desc-1"),
                 ("describe", "ns", "default"),
                 ("describe", "ns", "cli-limited"),
                 ("get", "svc", "cli-desc", "-o", "yaml"),
                 ("get", "svc", "cli-desc", "-o", "json"),
                 ("get", "svc", "-l", "suite=cli", "-o", "name"),
                 ("get", "endpointslices", "cli-desc-1", "-o", "yaml"),
                 ("get", "svc", "cli-absent"),
                 ("get", "svc", "-l", "app=cli-nothing")):
        ours = svcnet(cluster, *args)
        theirs = cluster.kubectl(*args, check=False)
        if (ours.returncode, ours.stdout, ours.stderr) != (
                theirs.returncode, theirs.stdout, theirs.stderr):
            differences.append(f"{' '.join(args)}:\n--- svcnet ({ours.returncode})\n"
                               f"{ours.stdout}{ours.stderr}--- kubectl ({theirs.returncode})\n"
                               f"{theirs.stdout}{theirs.stderr}")
    assert not differences, "\n".join(differences)
