"""Kubernetes' message descriptors read from the installed kubectl, the shapes derived from them,
and the codec over them: every served kind round trips, and what kubectl's ``create``
generators send in protobuf decodes to the JSON kubectl writes for the same object.

These need the real kubectl (CI installs it): without it they skip on a laptop and fail under
``SVCNET_REQUIRE_ROOT_TESTS=1``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from svcnet.api import kubectl_descriptors as kd
from svcnet.api.protobuf import MEDIA_TYPE, Codec
from svcnet.apiserver.certs import ensure_tls
from svcnet.apiserver.resources import RESOURCES
from tests.conftest import require_binary
from tests.kubectl_codec import require_codec
from tests.kubectl_recorder import recorder

CORE = "k8s.io/api/core/v1/generated.proto"


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return Path(require_binary("kubectl"))


@pytest.fixture(scope="module")
def found(kubectl: Path) -> kd.Extracted:
    return kd.extract(kubectl.resolve())


@pytest.fixture(scope="module")
def codec() -> Codec:
    return require_codec()


def test_kubectl_holds_the_descriptors_of_every_served_group(found: kd.Extracted) -> None:
    files = found.files
    names = [f.name for f in files.file]
    for needed in (CORE, "k8s.io/api/apps/v1/generated.proto",
                   "k8s.io/api/discovery/v1/generated.proto",
                   "k8s.io/api/rbac/v1/generated.proto",
                   "k8s.io/api/coordination/v1/generated.proto",
                   "k8s.io/api/authentication/v1/generated.proto",
                   "k8s.io/api/authorization/v1/generated.proto",
                   "k8s.io/api/autoscaling/v1/generated.proto",
                   "k8s.io/api/storage/v1/generated.proto",
                   "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
                   "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
                   "k8s.io/apimachinery/pkg/api/resource/generated.proto"):
        assert needed in names
    # Dependencies first, and gogo.proto (not embedded) dropped from every file.
    for i, f in enumerate(files.file):
        assert all(dep in names[:i] for dep in f.dependency), f.name
    core = files.file[names.index(CORE)]
    assert {m.name for m in core.message_type} >= {"Service", "ServiceList", "Pod", "Secret"}
    # Go's struct tags, by protobuf field: the JSON side of Kubernetes' types.
    assert found.tags["5/nodePort"] == ["nodePort,omitempty"]
    assert found.tags["2/volumeSource"] == [",inline"]
    assert sorted(found.tags["3/port"]) == ["port", "port,omitempty"]  # several structs


def test_the_cache_is_keyed_by_the_binary(kubectl: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = kd.load(kubectl, cache)
    (cached,) = cache.glob("kubectl-descriptors-*.json")
    size = kubectl.resolve().stat().st_size
    assert cached.name.startswith(f"kubectl-descriptors-v1-{size}-")
    assert kd.load(kubectl, cache) == first
    # Another binary (a copy with another mtime) is another key; the old entry goes.
    copy = tmp_path / "kubectl"
    shutil.copy(kubectl.resolve(), copy)
    os.utime(copy, ns=(1, 1))
    assert kd.load(copy, cache) == first
    (entry,) = cache.glob("*.json")
    assert entry.name != cached.name
    # A damaged cache entry is rebuilt.
    entry.write_bytes(b"\xff\xff")
    assert kd.load(copy, cache) == first


def test_a_binary_without_descriptors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "kubectl"
    fake.write_bytes(b"\x7fELF" + b"\x1f\x8b\x08\x00\x00\x00\x00\x00garbage" * 3)
    with pytest.raises(kd.NoDescriptors):
        kd.extract(fake)
    missing = tmp_path / "missing"  # named, but not there
    monkeypatch.setenv(kd.KUBECTL_ENV, str(missing))
    assert kd.codec_from_kubectl(tmp_path / "cache") is None
    monkeypatch.setenv(kd.KUBECTL_ENV, str(fake))
    assert kd.codec_from_kubectl(tmp_path / "cache") is None
    # Descriptors that do not make a pool (a dependency missing) are refused the same way.
    broken = descriptor_pb2.FileDescriptorSet()
    broken.file.add(name="k8s.io/x.proto", package="k8s.io.x", dependency=["k8s.io/gone.proto"])
    monkeypatch.setattr(kd, "load", lambda binary, cache: kd.Extracted(broken))
    assert kd.codec_from_kubectl(None) is None
    monkeypatch.setenv(kd.KUBECTL_ENV, "")
    assert kd.find_kubectl() is None
    assert kd.codec_from_kubectl(None) is None


def test_shapes_come_from_gogo_options_and_struct_tags(found: kd.Extracted) -> None:
    shapes = kd.shapes(found)
    core = "k8s.io.api.core.v1"
    port = shapes[f"{core}.ServicePort"]
    assert port["port"] == ""  # int32, no omitempty (ambiguous tag: required by the client)
    assert port["nodePort"] == "o"  # int32, omitempty
    assert port["appProtocol"] == "po"  # *string
    assert shapes[f"{core}.ServiceSpec"]["allocateLoadBalancerNodePorts"] == "po"
    assert shapes[f"{core}.Volume"]["volumeSource"] == "oi"  # json:",inline"
    assert shapes[f"{core}.Probe"]["handler"] == "oi"
    assert "i" not in shapes["k8s.io.api.rbac.v1.RoleBinding"]["roleRef"]  # same name as type
    assert "i" not in shapes[f"{core}.Pod"]["metadata"]
    assert shapes[f"{core}.ServiceList"]["items"] == ""
    assert shapes["k8s.io.api.authentication.v1.TokenRequestStatus"]["token"] == "o"
    # A field whose JSON name is not its protobuf name (the tag says so).
    assert shapes["k8s.io.api.authentication.v1.BoundObjectReference"]["uID"] == "o:uid"
    # Without the binary's tags, the client schema's reading gives the same shapes.
    by_client = kd.shapes(kd.Extracted(found.files))
    assert by_client[f"{core}.Volume"] == shapes[f"{core}.Volume"]
    assert by_client[f"{core}.ServicePort"] == port
    assert by_client["k8s.io.api.authentication.v1.BoundObjectReference"]["uID"] == "o:uid"


def _without_nulls(value: Any) -> Any:
    """What svcnet's decoder keeps: a JSON ``null`` reads as absent."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _content(value: Any) -> Any:
    """``value`` less Go's zero values (nulls, zero structs, zero scalars)."""
    if isinstance(value, dict):
        out = {k: _content(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, "", 0, False)}
    if isinstance(value, list):
        return [_content(v) for v in value]
    return value


_SPECS: dict[str, dict[str, Any]] = {
    "Service": {"spec": {"ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}],
                         "selector": {"app": "web"}, "type": "ClusterIP"}},
    "Pod": {"spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"limits": {"cpu": "100m"}},
                                     "readinessProbe": {"tcpSocket": {"port": 80},
                                                        "periodSeconds": 3}}],
                     "volumes": [{"name": "v", "configMap": {"name": "cm"}}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}},
    "Deployment": {"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                            "template": {"metadata": {"labels": {"a": "b"}},
                                         "spec": {"containers": [{"name": "c"}]}},
                            "strategy": {"rollingUpdate": {"maxSurge": "25%"}}}},
    "ReplicaSet": {"spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}}}},
    "EndpointSlice": {"addressType": "IPv4",
                      "endpoints": [{"addresses": ["10.0.0.1"],
                                     "conditions": {"ready": True}}],
                      "ports": [{"name": "http", "port": 80}]},
    "ConfigMap": {"data": {"a": "b"}, "binaryData": {"c": "AAE="}},
    "Secret": {"data": {"a": "Yg=="}, "type": "Opaque"},
    "Role": {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    "RoleBinding": {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": "r"},
                    "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "n"}]},
    "Lease": {"spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                       "renewTime": "2025-01-01T00:00:00.123456Z"}},
    "SelfSubjectAccessReview": {"spec": {"resourceAttributes": {"verb": "get",
                                                                "resource": "pods"}},
                                "status": {"allowed": True, "reason": "ok"}},
    "Node": {"status": {"capacity": {"cpu": "2"}, "addresses": [{"type": "InternalIP",
                                                                  "address": "10.0.0.2"}]}},
}


#: Kinds GA in a later Kubernetes than the installed kubectl (1.32 knows them as v1beta1 only):
#: no protobuf form here, the server answers them in JSON.
_NEWER_THAN_KUBECTL = {("networking.k8s.io/v1", "ServiceCIDR"),
                       ("networking.k8s.io/v1", "IPAddress"),
                       # kubectl links no apiextensions types: CRDs are answered in JSON.
                       ("apiextensions.k8s.io/v1", "CustomResourceDefinition")}


def test_kinds_newer_than_kubectl_have_no_protobuf_form(codec: Codec) -> None:
    """When the installed kubectl learns them, they join the round trip below."""
    for api_version, kind in _NEWER_THAN_KUBECTL:
        assert not codec.has(api_version, kind), (api_version, kind)


@pytest.mark.parametrize("res", [r for r in RESOURCES
                                 if (r.api_version, r.kind) not in _NEWER_THAN_KUBECTL
                                 and r.group != "metrics.k8s.io"],  # JSON only
                         ids=lambda r: f"{r.group or 'core'}/{r.kind}")
def test_every_served_kind_round_trips(codec: Codec, res: Any) -> None:
    obj = {"apiVersion": res.api_version, "kind": res.kind,
           "metadata": {"name": "x", "namespace": "n", "labels": {"a": "b"}, "uid": "u",
                        "creationTimestamp": "2025-01-01T00:00:00Z", "resourceVersion": "5"},
           **_SPECS.get(res.kind, {})}
    assert codec.has(res.api_version, res.kind)
    back = codec.decode(codec.encode(obj))
    assert _content(back) == _content(obj)
    assert codec.decode(codec.encode(back)) == back  # Go's own JSON shape is a fixed point
    if "list" not in res.verbs:
        return
    assert codec.has(res.api_version, res.list_kind)
    item = {k: v for k, v in back.items() if k not in ("apiVersion", "kind")}
    listed = {"apiVersion": res.api_version, "kind": res.list_kind,
              "metadata": {"resourceVersion": "9"}, "items": [item]}
    assert codec.decode(codec.encode(listed))["items"] == [item]  # no TypeMeta on the wire


GENERATORS = [
    ("deployment", "web", "--image=nginx", "--replicas=2", "--port=80"),
    ("service", "clusterip", "web", "--tcp=80:8080"),
    ("service", "clusterip", "headless", "--clusterip=None"),
    ("service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"),
    ("service", "loadbalancer", "lb", "--tcp=80:8080"),
    ("service", "externalname", "ext", "--external-name=example.com"),
    ("namespace", "demo"),
    ("configmap", "cm", "--from-literal=a=b"),
    ("secret", "generic", "s", "--from-literal=a=b", "--type=Opaque"),
    ("secret", "docker-registry", "reg", "--docker-server=r.example", "--docker-username=u",
     "--docker-password=p"),
    ("serviceaccount", "sa"),
    ("rolebinding", "rb", "--role=r", "--serviceaccount=default:sa", "--user=alice"),
    ("clusterrole", "cr", "--verb=get", "--non-resource-url=/healthz"),
    ("clusterrole", "agg", "--aggregation-rule=a=b"),
    ("clusterrolebinding", "crb", "--clusterrole=cr", "--group=devs"),
]


@pytest.mark.parametrize("args", GENERATORS, ids=lambda a: "-".join(a[:2]))
def test_generators_send_protobuf_that_decodes_to_their_json(codec: Codec, tmp_path: Path,
                                                             args: tuple[str, ...]) -> None:
    """The real kubectl against a recorder: its protobuf body, decoded, is the JSON it prints
    for the same object (``--dry-run=client -o json``, Go's ``json.Marshal``)."""
    with recorder(tmp_path) as rec:
        rec.kubectl("create", *args)
        (sent,) = rec.writes()
        assert sent.content_type == MEDIA_TYPE
        as_json = rec.kubectl("create", *args, "--dry-run=client", "-o", "json")
    expected = json.loads(as_json.stdout)
    assert _without_nulls(codec.decode(sent.body)) == _without_nulls(expected)


def test_token_generator(codec: Codec, tmp_path: Path) -> None:
    """``create token`` has no ``--dry-run``: the JSON Go writes for its TokenRequest is
    spelled out. ``status.token`` (``json:"token"``) shares its protobuf tag with fields that
    are ``omitempty`` and the client does not require it, so its empty value is left out: an
    output-only field, which the server ignores in a request."""
    with recorder(tmp_path) as rec:
        rec.kubectl("create", "token", "sa", "--duration=1h", "--audience=x")
        (sent,) = rec.writes()
    assert sent.path == "/api/v1/namespaces/default/serviceaccounts/sa/token"
    assert codec.decode(sent.body) == {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": ["x"], "expirationSeconds": 3600, "boundObjectRef": None},
        "status": {"expirationTimestamp": None}}
    with recorder(tmp_path) as rec:
        rec.kubectl("create", "token", "sa", "--bound-object-kind=Pod",
                    "--bound-object-name=p", "--bound-object-uid=u-1")
        (sent,) = rec.writes()
    assert codec.decode(sent.body)["spec"]["boundObjectRef"] == {
        "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u-1"}


def test_tls_secret_generator(codec: Codec, tmp_path: Path) -> None:
    tls = ensure_tls(tmp_path / "data", ["127.0.0.1"])  # a valid pair (kubectl checks it)
    test_generators_send_protobuf_that_decodes_to_their_json(
        codec, tmp_path, ("secret", "tls", "t", f"--cert={tls.cert}", f"--key={tls.key}"))
