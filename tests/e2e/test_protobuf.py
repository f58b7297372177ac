"""The protobuf media type through the real server and the real kubectl.

The server reads Kubernetes' message descriptors from the installed kubectl binary
(svcnet/api/kubectl_descriptors.py), so every served kind speaks protobuf: kubectl's ``create``
generators (which send protobuf bodies), ``--dry-run=server``, ``auth can-i``/``whoami``,
``describe``, raw protobuf requests, errors and watches. A generator's object is the same
whether it travels as protobuf or as JSON (``--dry-run=client -o json | create -f -``).
Without kubectl a server answers protobuf bodies 415, which is asserted too.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config as kube_config

from svcnet.api.protobuf import MAGIC, MEDIA_TYPE, Codec
from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.kubectl_codec import require_codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    return require_codec()


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory, codec: Codec) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("pbserver")
    proc = start_server(data_dir)
    try:
        yield Cluster(data_dir, data_dir / "kubeconfig", proc, tmp_path_factory.mktemp("kc"))
    finally:
        assert stop_server(proc) == 0


def raw(cluster: Cluster, method: str, path: str, body: bytes | None = None,
        content_type: str = MEDIA_TYPE, accept: str = MEDIA_TYPE,
        timeout: float = 20) -> tuple[int, str, bytes]:
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.url + path, data=body, method=method)
    req.add_header("Content-Type", content_type)
    req.add_header("Accept", accept)
    req.add_header("Authorization", f"Bearer {cluster.token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def get_json(cluster: Cluster, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return out


def test_kubectl_create_namespace_and_dry_run(pb: Cluster) -> None:
    r = pb.kubectl("create", "namespace", "demo-dry", "--dry-run=server", "-o", "json")
    assert json.loads(r.stdout)["metadata"]["name"] == "demo-dry"
    assert pb.kubectl("get", "namespace", "demo-dry", check=False).returncode != 0
    assert "namespace/demo created" in pb.kubectl("create", "namespace", "demo").stdout
    ns = get_json(pb, "namespace", "demo")
    assert ns["status"] == {"phase": "Active"}


@pytest.mark.parametrize(("args", "spec"), [
    (("clusterip", "web", "--tcp=80:8080"),
     {"type": "ClusterIP", "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP",
                                      "targetPort": 8080}], "selector": {"app": "web"}}),
    (("nodeport", "np", "--tcp=81:8081", "--node-port=30081"),
     {"type": "NodePort", "ports": [{"name": "81-8081", "port": 81, "protocol": "TCP",
                                     "targetPort": 8081, "nodePort": 30081}]}),
    (("loadbalancer", "lb", "--tcp=443:8443"),
     {"type": "LoadBalancer", "ports": [{"name": "443-8443", "port": 443, "protocol": "TCP",
                                         "targetPort": 8443}]}),
    (("externalname", "ext", "--external-name=example.com"),
     {"type": "ExternalName", "externalName": "example.com"}),
])
def test_kubectl_create_service_generators(pb: Cluster, args: tuple[str, ...],
                                           spec: dict[str, Any]) -> None:
    dry = pb.kubectl("create", "service", *args, "--dry-run=server", "-o", "json")
    assert json.loads(dry.stdout)["spec"]["type"] == spec["type"]
    assert pb.kubectl("get", "service", args[1], check=False).returncode != 0
    pb.kubectl("create", "service", *args)
    got = get_json(pb, "service", args[1])["spec"]
    for key, want in spec.items():
        if key == "ports":
            assert [{k: p[k] for k in w} for p, w in zip(got["ports"], want, strict=True)] == want
        else:
            assert got[key] == want, key
    if spec["type"] == "LoadBalancer":
        assert got["ports"][0]["nodePort"] >= 30000


def test_kubectl_describe_reads_protobuf(pb: Cluster) -> None:
    """describe asks for protobuf first: Services come back in protobuf, the kinds the schema
    lacks (EndpointSlices, Events) in JSON, and kubectl reads both."""
    pb.kubectl("create", "service", "clusterip", "desc", "--tcp=80:8080")
    out = pb.kubectl("describe", "service", "desc").stdout
    assert "Name:" in out and "desc" in out and "8080/TCP" in out


def test_kubectl_create_deployment(pb: Cluster) -> None:
    dry = pb.kubectl("create", "deployment", "web", "--image=x", "--dry-run=server", "-o",
                     "json")
    assert json.loads(dry.stdout)["spec"]["template"]["spec"]["containers"][0]["image"] == "x"
    assert pb.kubectl("get", "deployment", "web", check=False).returncode != 0
    pb.kubectl("create", "deployment", "web", "--image=x", "--replicas=2")
    spec = get_json(pb, "deployment", "web")["spec"]
    assert spec["replicas"] == 2 and spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["strategy"]["type"] == "RollingUpdate"  # defaulted as for a JSON body
    assert spec["template"]["spec"]["containers"][0]["terminationMessagePath"] == \
        "/dev/termination-log"


def _without_nulls(value: Any) -> Any:
    """JSON ``null`` as absent (kubectl prints a typed answer's nil fields, an unstructured
    one's not at all)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _volatile(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` less what differs between two creations of the same object."""
    obj = _without_nulls(obj)
    meta = {k: v for k, v in obj["metadata"].items()
            if k not in ("uid", "creationTimestamp", "managedFields", "resourceVersion")}
    out = {**obj, "metadata": meta}
    if out.get("kind") == "Service":
        out["spec"] = {k: v for k, v in out["spec"].items()
                       if k not in ("clusterIP", "clusterIPs")}
        for port in out["spec"].get("ports", []):
            port.pop("nodePort", None)
    return out


GENERATORS = [
    ("deployment", "gd", "--image=nginx", "--replicas=2", "--port=80"),
    ("service", "clusterip", "gs", "--tcp=80:8080"),
    ("service", "clusterip", "gh", "--clusterip=None"),
    ("service", "nodeport", "gn", "--tcp=80:8080"),
    ("service", "loadbalancer", "gl", "--tcp=80:8080"),
    ("service", "externalname", "ge", "--external-name=example.com"),
    ("namespace", "gns"),
    ("configmap", "gc", "--from-literal=a=b", "--from-literal=c=d"),
    ("secret", "generic", "gsec", "--from-literal=a=b"),
    ("secret", "docker-registry", "greg", "--docker-server=r.example", "--docker-username=u",
     "--docker-password=p"),
    ("serviceaccount", "gsa"),
    ("role", "gr", "--verb=get,list", "--resource=pods,services"),
    ("rolebinding", "grb", "--role=gr", "--serviceaccount=default:gsa", "--user=alice"),
    ("clusterrole", "gcr", "--verb=get", "--non-resource-url=/healthz"),
    ("clusterrole", "gagg", "--aggregation-rule=svcnet-agg=true"),
    ("clusterrolebinding", "gcrb", "--clusterrole=gcr", "--group=devs"),
]


@pytest.mark.parametrize("args", GENERATORS, ids=lambda a: "-".join(a[:2]))
def test_every_generator_in_protobuf_is_its_json(pb: Cluster, args: tuple[str, ...]) -> None:
    """``kubectl create X`` sends protobuf; the same object sent as JSON (``--dry-run=client
    -o json`` into ``create -f -``) is answered with the same object, dry run or not."""
    as_pb = json.loads(pb.kubectl("create", *args, "--dry-run=server", "-o", "json").stdout)
    sent = pb.kubectl("create", *args, "--dry-run=client", "-o", "json").stdout
    as_json = json.loads(pb.kubectl("create", "-f", "-", "--dry-run=server", "-o", "json",
                                    stdin=sent).stdout)
    assert _volatile(as_pb) == _volatile(as_json)
    kind = as_pb["kind"].lower()
    assert pb.kubectl("get", kind, as_pb["metadata"]["name"], check=False).returncode != 0
    created = pb.kubectl("create", *args)
    assert created.stdout.strip().endswith(" created")
    got = get_json(pb, kind, as_pb["metadata"]["name"])

    def content(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in _volatile(obj).items() if k not in ("metadata", "status")}

    assert content(got) == content(as_pb)
    assert got["metadata"].get("labels") == as_pb["metadata"].get("labels")


def test_tls_secret_and_token(pb: Cluster) -> None:
    pki = pb.data_dir / "pki"  # the server's own pair is a valid one (kubectl checks it)
    out = pb.kubectl("create", "secret", "tls", "gtls", f"--cert={pki / 'apiserver.crt'}",
                     f"--key={pki / 'apiserver.key'}").stdout
    assert out.strip() == "secret/gtls created"
    assert get_json(pb, "secret", "gtls")["type"] == "kubernetes.io/tls"
    pb.kubectl("create", "serviceaccount", "tok")
    token = pb.kubectl("create", "token", "tok", "--duration=10m").stdout.strip()
    assert token.count(".") == 2  # a JWT, from a protobuf TokenRequest
    # Bound to the Secret: its uid travels in BoundObjectReference's renamed field (uID).
    uid = get_json(pb, "secret", "gtls")["metadata"]["uid"]
    bound = ("create", "token", "tok", "--bound-object-kind=Secret",
             "--bound-object-name=gtls")
    assert pb.kubectl(*bound, f"--bound-object-uid={uid}").stdout.count(".") == 2
    wrong = pb.kubectl(*bound, "--bound-object-uid=not-its-uid", check=False)
    assert wrong.returncode != 0
    assert "the UID in the bound object reference (not-its-uid) does not match" in wrong.stderr
    whoami = pb.kubectl("auth", "whoami", "-o", "json", "--token", token)
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == \
        "system:serviceaccount:default:tok"


def test_auth_can_i_and_whoami(pb: Cluster) -> None:
    assert pb.kubectl("auth", "can-i", "create", "services").stdout.strip() == "yes"
    listed = pb.kubectl("auth", "can-i", "--list").stdout
    assert listed.splitlines()[0].split()[:2] == ["Resources", "Non-Resource"]
    assert "*.*" in listed
    me = json.loads(pb.kubectl("auth", "whoami", "-o", "json").stdout)
    assert me["kind"] == "SelfSubjectReview" and me["status"]["userInfo"]["username"]
    pb.kubectl("create", "serviceaccount", "nobody")
    token = pb.kubectl("create", "token", "nobody").stdout.strip()
    no = pb.kubectl("auth", "can-i", "create", "services", "--token", token, check=False)
    assert no.stdout.strip() == "no"


def test_kubectl_describe_pod(pb: Cluster, codec: Codec) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dpod", "labels": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    code, _, body = raw(pb, "POST", "/api/v1/namespaces/default/pods", codec.encode(pod))
    assert code == 201, body
    out = pb.kubectl("describe", "pod", "dpod").stdout
    assert "Name:" in out and "dpod" in out and "busybox" in out and "a=b" in out


def test_get_list_and_error_in_protobuf(pb: Cluster, codec: Codec) -> None:
    pb.kubectl("create", "service", "clusterip", "pbget", "--tcp=80")
    code, ctype, body = raw(pb, "GET", "/api/v1/namespaces/default/services/pbget")
    assert (code, ctype) == (200, MEDIA_TYPE) and body.startswith(MAGIC)
    svc = codec.decode(body)
    assert svc["kind"] == "Service" and svc["metadata"]["name"] == "pbget"
    assert svc["spec"]["clusterIP"] == get_json(pb, "service", "pbget")["spec"]["clusterIP"]
    code, _, body = raw(pb, "GET", "/api/v1/namespaces/default/services")
    lst = codec.decode(body)
    assert lst["kind"] == "ServiceList" and "pbget" in {
        i["metadata"]["name"] for i in lst["items"]}
    code, ctype, body = raw(pb, "GET", "/api/v1/namespaces/default/services/nope")
    assert (code, ctype) == (404, MEDIA_TYPE)
    status = codec.decode(body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
    # A JSON-first Accept, and a Table, stay JSON.
    code, ctype, body = raw(pb, "GET", "/api/v1/namespaces/default/services/pbget",
                            accept=f"application/json, {MEDIA_TYPE}")
    assert ctype == "application/json" and json.loads(body)["metadata"]["name"] == "pbget"
    code, ctype, body = raw(pb, "GET", "/api/v1/namespaces/default/services/pbget",
                            accept="application/json;as=Table;v=v1;g=meta.k8s.io,"
                                   "application/json")
    assert json.loads(body)["kind"] == "Table"


def test_raw_create_decodes_like_json(pb: Cluster, codec: Codec) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rawpb"},
           "spec": {"ports": [{"port": 8080, "targetPort": "http"}]}}
    code, _, body = raw(pb, "POST", "/api/v1/namespaces/default/services", codec.encode(svc))
    assert code == 201, body
    created = codec.decode(body)
    assert created["spec"]["ports"][0]["targetPort"] == "http"
    assert created["spec"]["type"] == "ClusterIP"  # defaulted, as for JSON
    # Validation is the JSON path's: the same 422 with the same field path.
    bad = {**svc, "metadata": {"name": "Bad_Name"}}
    code, _, body = raw(pb, "POST", "/api/v1/namespaces/default/services", codec.encode(bad),
                        accept="application/json")
    status = json.loads(body)
    assert code == 422 and status["details"]["causes"][0]["field"] == "metadata.name"


def test_delete_with_protobuf_options(pb: Cluster, codec: Codec) -> None:
    pb.kubectl("create", "service", "clusterip", "delpb", "--tcp=80")
    path = "/api/v1/namespaces/default/services/delpb"

    def delete(options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = codec.encode({"apiVersion": "v1", "kind": "DeleteOptions", **options})
        code, _, answer = raw(pb, "DELETE", path, body)
        return code, codec.decode(answer)

    code, _ = delete({"dryRun": ["All"]})
    assert code == 200 and raw(pb, "GET", path)[0] == 200
    code, status = delete({"preconditions": {"uid": "not-its-uid"}})
    assert (code, status["kind"], status["reason"]) == (409, "Status", "Conflict")
    code, gone = delete({"gracePeriodSeconds": 0})
    assert code == 200 and gone["metadata"]["name"] == "delpb"
    assert raw(pb, "GET", path)[0] == 404


@pytest.mark.parametrize(("body", "code"), [
    (b"not protobuf", 400),
    (MAGIC + b"\xff\xff\xff", 400),
    (MAGIC + b"\x0a\x0e\x0a\x02v1\x12\x08Whatever\x12\x00", 415),
    (MAGIC + b"\x0a\x13\x0a\x07apps/v1\x12\x08Nonesuch\x12\x00", 415),  # no message here
])
def test_bad_protobuf_bodies(pb: Cluster, body: bytes, code: int) -> None:
    got, _, answer = raw(pb, "POST", "/api/v1/namespaces/default/services", body,
                             accept="application/json")
    status = json.loads(answer)
    assert (got, status["code"]) == (code, code)
    if code == 400:
        assert status["message"].startswith('Service in version "v1" cannot be handled as a '
                                            "Service: ")
    if code == 415:  # upstream's words for a kind without a protobuf form (a CRD's)
        assert status["message"] == ("the body of the request was in an unknown format - "
                                     "accepted media types include: application/json, "
                                     "application/yaml")


def test_protobuf_watch_frames(pb: Cluster, codec: Codec) -> None:
    pb.kubectl("create", "namespace", "pbwatch")
    pb.kubectl("create", "service", "clusterip", "w1", "--tcp=80", "-n", "pbwatch")
    path = "/api/v1/namespaces/pbwatch/services"
    rv = codec.decode(raw(pb, "GET", path)[2])["metadata"]["resourceVersion"]
    with ThreadPoolExecutor(2) as pool:
        initial = pool.submit(raw, pb, "GET", f"{path}?watch=true&timeoutSeconds=3")
        live = pool.submit(raw, pb, "GET", f"{path}?watch=true&timeoutSeconds=3"
                           f"&resourceVersion={rv}")
        time.sleep(1)
        pb.kubectl("create", "service", "clusterip", "w2", "--tcp=80", "-n", "pbwatch")
        pb.kubectl("delete", "service", "w1", "-n", "pbwatch")
        for future in (initial, live):
            code, ctype, _ = future.result(timeout=30)
            assert (code, ctype) == (200, f"{MEDIA_TYPE};stream=watch")
    seen = [[(t, o["kind"], o["metadata"]["name"]) for t, o in codec.read_frames(f.result()[2])]
            for f in (initial, live)]
    assert seen[0] == [("ADDED", "Service", "w1"), ("ADDED", "Service", "w2"),
                       ("DELETED", "Service", "w1")]
    assert seen[1] == seen[0][1:]


def test_python_client_unaffected(pb: Cluster) -> None:
    api = client.CoreV1Api(kube_config.new_client_from_config(str(pb.kubeconfig)))
    try:
        api.create_namespaced_service("default", client.V1Service(
            metadata=client.V1ObjectMeta(name="pyc"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
        names = {s.metadata.name for s in api.list_namespaced_service("default").items}
        assert "pyc" in names
    finally:
        api.api_client.close()


def test_without_kubectl_protobuf_is_a_415(tmp_path: Path, codec: Codec) -> None:
    proc = start_server(tmp_path, wrapper=("env", "SVCNET_KUBECTL="))
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kc")
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
               "spec": {"ports": [{"port": 80}]}}
        code, _, body = raw(cluster, "POST", "/api/v1/namespaces/default/services",
                            codec.encode(svc), accept="application/json")
        assert code == 415 and json.loads(body)["reason"] == "UnsupportedMediaType"
        code, ctype, _ = raw(cluster, "GET", "/api/v1/namespaces/default/services")
        assert (code, ctype) == (200, "application/json")  # answers stay JSON
    finally:
        assert stop_server(proc) == 0
    assert (tmp_path / "server.log").read_text().count("protobuf: no kubectl binary") == 1
