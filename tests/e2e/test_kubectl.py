"""The real kubectl against a real `svcnet server`: every command DESIGN §6 promises.

Each test uses its own Service names so that the tests are independent within one server.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

from tests.e2e.conftest import Cluster


def manifest(name: str, *, port: int = 80, target: int | str = 8080, labels: str = "",
             svc_type: str = "ClusterIP", extra: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata:
          name: {name}
          labels: {{app: {name}{labels}}}
        spec:
          type: {svc_type}
          selector: {{app: {name}}}
          ports:
          - name: http
            port: {port}
            targetPort: {json.dumps(target)}
        """) + extra


def test_version_and_api_resources(cluster: Cluster) -> None:
    out = cluster.kubectl("version").stdout
    assert "Server Version: v1.33" in out
    res = cluster.kubectl("api-resources").stdout
    for line in ("services", "svc", "endpointslices", "namespaces", "nodes", "pods"):
        assert line in res


def test_apply_create_get_describe_delete(cluster: Cluster) -> None:
    r = cluster.kubectl("apply", "-f", "-", stdin=manifest("web"))
    assert r.stdout.strip() == "service/web created"
    r = cluster.kubectl("apply", "-f", "-", stdin=manifest("web"))
    assert r.stdout.strip() == "service/web unchanged"
    r = cluster.kubectl("apply", "-f", "-", stdin=manifest("web", target=9090))
    assert r.stdout.strip() == "service/web configured"

    table = cluster.kubectl("get", "svc", "web").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = table[1].split()
    assert cells[:2] == ["web", "ClusterIP"] and cells[2].startswith("10.") and cells[4] == "80/TCP"

    wide = cluster.kubectl("get", "svc", "web", "-o", "wide").stdout
    assert "SELECTOR" in wide and "app=web" in wide
    obj = json.loads(cluster.kubectl("get", "svc", "web", "-o", "json").stdout)
    assert obj["spec"]["ports"][0]["targetPort"] == 9090
    assert obj["spec"]["clusterIP"] == obj["spec"]["clusterIPs"][0]
    assert obj["spec"]["ipFamilies"] == ["IPv4"] and obj["spec"]["sessionAffinity"] == "None"
    assert cluster.kubectl("get", "svc", "web", "-o", "name").stdout.strip() == "service/web"
    assert "clusterIP:" in cluster.kubectl("get", "svc", "web", "-o", "yaml").stdout

    desc = cluster.kubectl("describe", "svc", "web").stdout
    assert "Name:" in desc and "web" in desc and "TargetPort:" in desc and "9090/TCP" in desc

    r = cluster.kubectl("delete", "svc", "web")
    assert r.stdout.strip() == 'service "web" deleted'
    r = cluster.kubectl("get", "svc", "web", check=False)
    assert r.returncode == 1
    assert 'Error from server (NotFound): services "web" not found' in r.stderr


def test_invalid_service_prints_what_kubernetes_prints(cluster: Cluster) -> None:
    r = cluster.kubectl("apply", "-f", "-", stdin=manifest("bad", port=0), check=False)
    assert r.returncode == 1
    assert r.stderr == ('The Service "bad" is invalid: spec.ports[0].port: Invalid value: 0: '
                        "must be between 1 and 65535, inclusive\n")
    two = manifest("bad2", port=0, target=0).replace("sessionAffinity", "x")
    r = cluster.kubectl("create", "-f", "-", stdin=two, check=False)
    assert r.stderr == (
        'The Service "bad2" is invalid: \n'
        "* spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive\n"
        "* spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive\n")
    assert cluster.kubectl("get", "svc", "bad", check=False).returncode == 1, "nothing stored"


def test_unknown_field_is_rejected_strictly(cluster: Cluster) -> None:
    bad = manifest("typo").replace("selector:", "selectr:")
    r = cluster.kubectl("create", "-f", "-", stdin=bad, check=False)
    assert r.returncode == 1
    assert 'strict decoding error: unknown field "spec.selectr"' in r.stderr


def test_labels_selectors_sorting_all_namespaces(cluster: Cluster) -> None:
    for name in ("sel-b", "sel-a"):
        cluster.kubectl("apply", "-f", "-", stdin=manifest(name, labels=", tier: t1"))
    out = cluster.kubectl("get", "svc", "-l", "tier=t1", "--sort-by=.metadata.name",
                          "-o", "name").stdout.split()
    assert out == ["service/sel-a", "service/sel-b"]
    table = cluster.kubectl("get", "svc", "-l", "tier=t1", "--sort-by=.metadata.name").stdout
    rows = [line.split()[0] for line in table.splitlines()[1:]]
    assert rows == ["sel-a", "sel-b"]
    labels = cluster.kubectl("get", "svc", "sel-a", "--show-labels").stdout
    assert "tier=t1" in labels
    everywhere = cluster.kubectl("get", "svc", "-A").stdout
    assert "NAMESPACE" in everywhere.splitlines()[0] and "kubernetes" in everywhere
    none = cluster.kubectl("get", "svc", "-l", "tier=nope")
    assert "No resources found in default namespace." in none.stderr


def test_label_annotate_patch_replace(cluster: Cluster) -> None:
    cluster.kubectl("create", "-f", "-", stdin=manifest("edit"))
    assert cluster.kubectl("label", "svc", "edit", "x=y").stdout.strip() == \
        "service/edit labeled"
    assert cluster.kubectl("label", "svc", "edit", "x-").stdout.strip() == \
        "service/edit unlabeled"
    assert cluster.kubectl("annotate", "svc", "edit", "note=hi").stdout.strip() == \
        "service/edit annotated"
    r = cluster.kubectl("patch", "svc", "edit", "-p",
                        '{"spec":{"ports":[{"port":80,"targetPort":7070}]}}')
    assert r.stdout.strip() == "service/edit patched"
    r = cluster.kubectl("patch", "svc", "edit", "-p",
                        '{"spec":{"ports":[{"port":80,"targetPort":7070}]}}')
    assert r.stdout.strip() == "service/edit patched (no change)"
    cluster.kubectl("patch", "svc", "edit", "--type", "merge", "-p",
                    '{"metadata":{"labels":{"m":"1"}}}')
    cluster.kubectl("patch", "svc", "edit", "--type", "json", "-p",
                    '[{"op":"replace","path":"/spec/ports/0/targetPort","value":6060}]')
    obj = json.loads(cluster.kubectl("get", "svc", "edit", "-o", "json").stdout)
    assert obj["metadata"]["labels"]["m"] == "1"
    assert obj["metadata"]["annotations"]["note"] == "hi"
    assert obj["spec"]["ports"][0]["targetPort"] == 6060
    ip = obj["spec"]["clusterIP"]
    r = cluster.kubectl("replace", "-f", "-", stdin=manifest("edit", target=5050))
    assert r.stdout.strip() == "service/edit replaced"
    obj = json.loads(cluster.kubectl("get", "svc", "edit", "-o", "json").stdout)
    assert obj["spec"]["clusterIP"] == ip, "replace keeps the allocated ClusterIP"
    assert obj["spec"]["ports"][0]["targetPort"] == 5050


def test_stale_replace_conflicts(cluster: Cluster) -> None:
    cluster.kubectl("create", "-f", "-", stdin=manifest("stale"))
    obj = json.loads(cluster.kubectl("get", "svc", "stale", "-o", "json").stdout)
    cluster.kubectl("label", "svc", "stale", "bump=1")
    r = cluster.kubectl("replace", "-f", "-", stdin=json.dumps(obj), check=False)
    assert r.returncode == 1
    assert "Error from server (Conflict)" in r.stderr
    assert "the object has been modified" in r.stderr


def test_server_side_apply_and_dry_run(cluster: Cluster) -> None:
    r = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=manifest("ssa"))
    assert r.stdout.strip() == "service/ssa serverside-applied"
    r = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=manifest("ssa", target=81))
    assert r.stdout.strip() == "service/ssa serverside-applied"
    obj = json.loads(cluster.kubectl("get", "svc", "ssa", "-o", "json").stdout)
    assert obj["spec"]["ports"][0]["targetPort"] == 81
    r = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest("ghost"))
    assert "(server dry run)" in r.stdout
    assert cluster.kubectl("get", "svc", "ghost", check=False).returncode == 1


def test_nodeport_and_loadbalancer_columns(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=manifest("np", svc_type="NodePort"))
    row = cluster.kubectl("get", "svc", "np").stdout.splitlines()[1].split()
    assert row[1] == "NodePort" and row[4].startswith("80:3") and row[4].endswith("/TCP")
    cluster.kubectl("apply", "-f", "-", stdin=manifest("lb", svc_type="LoadBalancer"))
    obj = json.loads(cluster.kubectl("get", "svc", "lb", "-o", "json").stdout)
    assert obj["spec"]["allocateLoadBalancerNodePorts"] is True
    assert obj["spec"]["ports"][0]["nodePort"] >= 30000


def test_get_all_and_other_kinds(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "all").stdout
    assert "service/kubernetes" in out
    ns = cluster.kubectl("get", "ns").stdout
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert name in ns
    assert cluster.kubectl("get", "endpointslices").returncode == 0


ENDPOINTS_DEPRECATED = ("Warning: v1 Endpoints is deprecated in v1.33+; "
                        "use discovery.k8s.io/v1 EndpointSlice")


def test_endpoints_are_deprecated_as_in_kubernetes_1_33(cluster: Cluster) -> None:
    """Every request for v1 Endpoints carries the deprecation warning, errors included, and
    kubectl prints it as it does against a 1.33 cluster; other resources carry none."""
    got = cluster.kubectl("get", "endpoints", "-A")
    assert ENDPOINTS_DEPRECATED in got.stderr
    missing = cluster.kubectl("get", "endpoints", "absent", check=False)
    assert missing.returncode != 0
    assert ENDPOINTS_DEPRECATED in missing.stderr
    assert "Warning" not in cluster.kubectl("get", "endpointslices", "-A").stderr
    assert "Warning" not in cluster.kubectl("get", "svc", "kubernetes").stderr


def test_watch_prints_changes(cluster: Cluster) -> None:
    cluster.kubectl("create", "-f", "-", stdin=manifest("watched"))
    proc = subprocess.Popen(
        ["kubectl", "get", "svc", "watched", "-w", "-o", "name"],
        env=cluster_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == "service/watched"
        cluster.kubectl("label", "svc", "watched", "seen=yes")
        assert proc.stdout.readline().strip() == "service/watched"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def cluster_env(cluster: Cluster) -> dict[str, str]:
    import os

    return dict(os.environ, KUBECONFIG=str(cluster.kubeconfig),
                KUBECACHEDIR=str(cluster.cache_dir), HOME=str(cluster.cache_dir))
