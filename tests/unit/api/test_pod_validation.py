"""Pod defaulting and validation; cases follow upstream's validation_test.go
(TestValidateContainers, TestValidatePodSpec, TestValidateProbe, TestValidateEnv,
TestValidatePodUpdate, TestValidatePodStatusUpdate, ...) adapted to the v1 wire shape."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from svcnet.api.errors import ErrorType, FieldError
from svcnet.api.pods import (
    PodValidationOptions,
    pod_qos_class,
    prepare_pod_for_create,
    prepare_pod_for_status_update,
    prepare_pod_for_update,
    set_defaults_pod,
    validate_pod,
    validate_pod_status_update,
    validate_pod_update,
)
from svcnet.api.resourcelists import parse_quantity

R = ErrorType.REQUIRED
I = ErrorType.INVALID  # noqa: E741
D = ErrorType.DUPLICATE
NS = ErrorType.NOT_SUPPORTED
F = ErrorType.FORBIDDEN
NF = ErrorType.NOT_FOUND
IE = ErrorType.INTERNAL

Pod = dict[str, Any]
Mutator = Callable[[Pod], object]  # lambdas may return whatever their last call returns


def _raw_pod() -> Pod:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
    }


def _pod() -> Pod:
    return set_defaults_pod(_raw_pod())


def _c(pod: Pod, i: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = pod["spec"]["containers"][i]
    return container


def _errset(errs: list[FieldError]) -> set[tuple[str, ErrorType]]:
    return {(e.field, e.type) for e in errs}


def _second_container(p: Pod) -> Pod:
    p["spec"]["containers"].append(set_defaults_pod(
        {"spec": {"containers": [{"name": "side", "image": "busybox:1"}]}})["spec"]
        ["containers"][0])
    return p


# ------------------------------------------------------------------------------ validate_pod

CREATE_CASES: list[tuple[str, Mutator, set[tuple[str, ErrorType]]]] = [
    ("valid-minimal", lambda p: None, set()),
    ("valid-probe-by-port-name",
     lambda p: _c(p).update(readinessProbe={
         "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
         "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}), set()),
    ("valid-env-downward-api",
     lambda p: _c(p).update(env=[
         {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                       "fieldPath": "status.podIP"}}},
         {"name": "LBL", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                    "fieldPath": "metadata.labels['app']"}}},
         {"name": "my.env-name", "value": "x"}]), set()),
    ("valid-dns-none-with-config",
     lambda p: p["spec"].update(dnsPolicy="None",
                                dnsConfig={"nameservers": ["10.96.0.10"],
                                           "searches": ["svc.cluster.local."]}), set()),
    ("valid-tolerations",
     lambda p: p["spec"].update(tolerations=[
         {"operator": "Exists"},
         {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
          "tolerationSeconds": 300}]), set()),
    ("valid-volume-mount",
     lambda p: (p["spec"].update(volumes=[{"name": "data", "emptyDir": {}}]),
                _c(p).update(volumeMounts=[{"name": "data", "mountPath": "/data"}])), set()),
    # metadata
    ("name-missing", lambda p: p["metadata"].pop("name"), {("metadata.name", R)}),
    ("namespace-missing", lambda p: p["metadata"].pop("namespace"),
     {("metadata.namespace", R)}),
    ("name-not-subdomain", lambda p: p["metadata"].update(name="Web_0"),
     {("metadata.name", I)}),
    ("mirror-annotation-needs-node",
     lambda p: p["metadata"].update(annotations={"kubernetes.io/config.mirror": "x"}),
     {("metadata.annotations[kubernetes.io/config.mirror]", I)}),
    ("deletion-cost-not-int32",
     lambda p: p["metadata"].update(
         annotations={"controller.kubernetes.io/pod-deletion-cost": "+10"}),
     {("metadata.annotations[controller.kubernetes.io/pod-deletion-cost]", I)}),
    # containers
    ("no-containers", lambda p: p["spec"].update(containers=[]), {("spec.containers", R)}),
    ("container-name-missing", lambda p: _c(p).pop("name"),
     {("spec.containers[0].name", R)}),
    ("container-name-not-label", lambda p: _c(p).update(name="Web_1"),
     {("spec.containers[0].name", I)}),
    ("container-name-duplicate",
     lambda p: (_second_container(p), _c(p, 1).update(name="web")),
     {("spec.containers[1].name", D)}),
    ("image-missing", lambda p: _c(p).pop("image"), {("spec.containers[0].image", R)}),
    ("image-whitespace", lambda p: _c(p).update(image=" nginx"),
     {("spec.containers[0].image", I)}),
    ("termination-message-policy-bad",
     lambda p: _c(p).update(terminationMessagePolicy="Sometimes"),
     {("spec.containers[0].terminationMessagePolicy", NS)}),
    ("image-pull-policy-missing", lambda p: _c(p).pop("imagePullPolicy"),
     {("spec.containers[0].imagePullPolicy", R)}),
    ("image-pull-policy-bad", lambda p: _c(p).update(imagePullPolicy="Maybe"),
     {("spec.containers[0].imagePullPolicy", NS)}),
    ("restart-policy-on-regular-container", lambda p: _c(p).update(restartPolicy="Always"),
     {("spec.containers[0].restartPolicy", F)}),
    # ports
    ("container-port-zero", lambda p: _c(p)["ports"][0].pop("containerPort"),
     {("spec.containers[0].ports[0].containerPort", R)}),
    ("container-port-too-big", lambda p: _c(p)["ports"][0].update(containerPort=70000),
     {("spec.containers[0].ports[0].containerPort", I)}),
    ("port-name-upper", lambda p: _c(p)["ports"][0].update(name="HTTP"),
     {("spec.containers[0].ports[0].name", I)}),
    ("port-name-too-long", lambda p: _c(p)["ports"][0].update(name="a-very-long-port-name"),
     {("spec.containers[0].ports[0].name", I)}),
    ("port-name-duplicate",
     lambda p: _c(p)["ports"].append({"name": "http", "containerPort": 81, "protocol": "TCP"}),
     {("spec.containers[0].ports[1].name", D)}),
    ("port-protocol-bad", lambda p: _c(p)["ports"][0].update(protocol="ICMP"),
     {("spec.containers[0].ports[0].protocol", NS)}),
    ("port-protocol-missing", lambda p: _c(p)["ports"][0].pop("protocol"),
     {("spec.containers[0].ports[0].protocol", R)}),
    ("host-port-invalid", lambda p: _c(p)["ports"][0].update(hostPort=-1),
     {("spec.containers[0].ports[0].hostPort", I)}),
    ("host-port-conflict",
     lambda p: (_second_container(p), _c(p)["ports"][0].update(hostPort=80),
                _c(p, 1).update(ports=[{"containerPort": 9090, "hostPort": 80,
                                        "protocol": "TCP"}])),
     {("spec.containers[1].ports[0].hostPort", D)}),
    ("host-network-host-port-mismatch",
     lambda p: (p["spec"].update(hostNetwork=True), _c(p)["ports"][0].update(hostPort=9)),
     {("spec.containers[0].ports[0].hostPort", I)}),
    # env
    ("env-name-missing", lambda p: _c(p).update(env=[{"value": "x"}]),
     {("spec.containers[0].env[0].name", R)}),
    ("env-name-starts-with-digit", lambda p: _c(p).update(env=[{"name": "1ABC"}]),
     {("spec.containers[0].env[0].name", I)}),
    ("env-name-dotdot", lambda p: _c(p).update(env=[{"name": "..a"}]),
     {("spec.containers[0].env[0].name", I)}),
    ("env-value-from-empty", lambda p: _c(p).update(env=[{"name": "A", "valueFrom": {}}]),
     {("spec.containers[0].env[0].valueFrom", I)}),
    ("env-value-and-value-from",
     lambda p: _c(p).update(env=[{"name": "A", "value": "x", "valueFrom": {
         "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]),
     {("spec.containers[0].env[0].valueFrom", I)}),
    ("env-field-ref-unsupported",
     lambda p: _c(p).update(env=[{"name": "A", "valueFrom": {
         "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.restartPolicy"}}}]),
     {("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", NS)}),
    ("env-field-ref-unknown-label",
     lambda p: _c(p).update(env=[{"name": "A", "valueFrom": {
         "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.containers"}}}]),
     {("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", I)}),
    ("env-field-ref-bad-version",
     lambda p: _c(p).update(env=[{"name": "A", "valueFrom": {
         "fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}}}]),
     {("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", I)}),
    ("env-field-ref-missing-path",
     lambda p: _c(p).update(env=[{"name": "A", "valueFrom": {"fieldRef": {"apiVersion": "v1"}}}]),
     {("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", R)}),
    ("env-two-sources",
     lambda p: _c(p).update(env=[{"name": "A", "valueFrom": {
         "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"},
         "secretKeyRef": {"name": "s", "key": "k"}}}]),
     {("spec.containers[0].env[0].valueFrom", I)}),
    ("env-config-map-key-bad",
     lambda p: _c(p).update(env=[{"name": "A", "valueFrom": {
         "configMapKeyRef": {"name": "cm", "key": "a b"}}}]),
     {("spec.containers[0].env[0].valueFrom.configMapKeyRef.key", I)}),
    ("env-from-no-source", lambda p: _c(p).update(envFrom=[{"prefix": "P_"}]),
     {("spec.containers[0].envFrom", I)}),
    # probes
    ("probe-without-handler",
     lambda p: _c(p).update(readinessProbe={"periodSeconds": 10}),
     {("spec.containers[0].readinessProbe", R)}),
    ("probe-two-handlers",
     lambda p: _c(p).update(readinessProbe={"exec": {"command": ["true"]},
                                            "tcpSocket": {"port": 80}}),
     {("spec.containers[0].readinessProbe.tcpSocket", F)}),
    ("probe-negative-numbers",
     lambda p: _c(p).update(readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": -1,
                                            "initialDelaySeconds": -5}),
     {("spec.containers[0].readinessProbe.periodSeconds", I),
      ("spec.containers[0].readinessProbe.initialDelaySeconds", I)}),
    ("liveness-success-threshold-not-1",
     lambda p: _c(p).update(livenessProbe={"tcpSocket": {"port": 80}, "successThreshold": 2}),
     {("spec.containers[0].livenessProbe.successThreshold", I)}),
    ("startup-success-threshold-not-1",
     lambda p: _c(p).update(startupProbe={"tcpSocket": {"port": 80}, "successThreshold": 3}),
     {("spec.containers[0].startupProbe.successThreshold", I)}),
    ("readiness-termination-grace",
     lambda p: _c(p).update(readinessProbe={"tcpSocket": {"port": 80},
                                            "terminationGracePeriodSeconds": 10}),
     {("spec.containers[0].readinessProbe.terminationGracePeriodSeconds", I)}),
    ("liveness-termination-grace-zero",
     lambda p: _c(p).update(livenessProbe={"tcpSocket": {"port": 80}, "successThreshold": 1,
                                           "terminationGracePeriodSeconds": 0}),
     {("spec.containers[0].livenessProbe.terminationGracePeriodSeconds", I)}),
    ("http-get-bad-port-name",
     lambda p: _c(p).update(readinessProbe={"httpGet": {"port": "-bad-", "path": "/",
                                                        "scheme": "HTTP"}}),
     {("spec.containers[0].readinessProbe.httpGet.port", I)}),
    ("http-get-no-port-no-path-bad-scheme",
     lambda p: _c(p).update(readinessProbe={"httpGet": {"scheme": "FTP"}}),
     {("spec.containers[0].readinessProbe.httpGet.port", I),
      ("spec.containers[0].readinessProbe.httpGet.path", R),
      ("spec.containers[0].readinessProbe.httpGet.scheme", NS)}),
    ("http-get-bad-header",
     lambda p: _c(p).update(readinessProbe={"httpGet": {
         "port": 80, "path": "/", "scheme": "HTTP", "httpHeaders": [{"name": "X Y"}]}}),
     {("spec.containers[0].readinessProbe.httpGet.httpHeaders", I)}),
    ("grpc-port-missing", lambda p: _c(p).update(readinessProbe={"grpc": {}}),
     {("spec.containers[0].readinessProbe.grpc.port", I)}),
    ("exec-without-command", lambda p: _c(p).update(livenessProbe={"exec": {},
                                                                   "successThreshold": 1}),
     {("spec.containers[0].livenessProbe.exec.command", R)}),
    ("tcp-port-out-of-range",
     lambda p: _c(p).update(readinessProbe={"tcpSocket": {"port": 65536}}),
     {("spec.containers[0].readinessProbe.tcpSocket.port", I)}),
    ("lifecycle-sleep-too-long",
     lambda p: _c(p).update(lifecycle={"preStop": {"sleep": {"seconds": 31}}}),
     {("spec.containers[0].lifecycle.preStop.sleep", I)}),
    ("lifecycle-grpc-not-a-hook",
     lambda p: _c(p).update(lifecycle={"postStart": {"grpc": {"port": 1}}}),
     {("spec.containers[0].lifecycle.postStart", R)}),
    # init containers
    ("init-name-collides-with-container",
     lambda p: p["spec"].update(initContainers=[copy.deepcopy(_c(p))]),
     {("spec.initContainers[0].name", D)}),
    ("init-probe-without-restart-always",
     lambda p: p["spec"].update(initContainers=[dict(
         copy.deepcopy(_c(p)), name="init", readinessProbe={"tcpSocket": {"port": 80}})]),
     {("spec.initContainers[0].readinessProbe", F)}),
    ("init-sidecar-probe-ok",
     lambda p: p["spec"].update(initContainers=[dict(
         copy.deepcopy(_c(p)), name="proxy", restartPolicy="Always",
         readinessProbe={"tcpSocket": {"port": 80}})]), set()),
    ("init-restart-policy-bad",
     lambda p: p["spec"].update(initContainers=[dict(
         copy.deepcopy(_c(p)), name="init", restartPolicy="OnFailure")]),
     {("spec.initContainers[0].restartPolicy", NS)}),
    # pod spec
    ("restart-policy-bad", lambda p: p["spec"].update(restartPolicy="Sometimes"),
     {("spec.restartPolicy", NS)}),
    ("restart-policy-missing", lambda p: p["spec"].pop("restartPolicy"),
     {("spec.restartPolicy", R)}),
    ("dns-policy-bad", lambda p: p["spec"].update(dnsPolicy="Google"),
     {("spec.dnsPolicy", NS)}),
    ("dns-none-without-config", lambda p: p["spec"].update(dnsPolicy="None"),
     {("spec.dnsConfig", R)}),
    ("dns-config-bad-nameserver",
     lambda p: p["spec"].update(dnsConfig={"nameservers": ["1.2.3.4", "not-an-ip"]}),
     {("spec.dnsConfig.nameservers[1]", I)}),
    ("termination-grace-missing", lambda p: p["spec"].pop("terminationGracePeriodSeconds"),
     {("spec.terminationGracePeriodSeconds", R)}),
    ("node-selector-bad-key", lambda p: p["spec"].update(nodeSelector={"-x": "y"}),
     {("spec.nodeSelector", I)}),
    ("node-selector-bad-value", lambda p: p["spec"].update(nodeSelector={"x": "y z"}),
     {("spec.nodeSelector", I)}),
    ("hostname-not-label", lambda p: p["spec"].update(hostname="web.0"),
     {("spec.hostname", I)}),
    ("subdomain-not-label", lambda p: p["spec"].update(subdomain="Headless"),
     {("spec.subdomain", I)}),
    ("service-account-bad", lambda p: p["spec"].update(serviceAccountName="SA"),
     {("spec.serviceAccountName", I)}),
    ("node-name-bad", lambda p: p["spec"].update(nodeName="node_1"), {("spec.nodeName", I)}),
    ("active-deadline-zero", lambda p: p["spec"].update(activeDeadlineSeconds=0),
     {("spec.activeDeadlineSeconds", I)}),
    ("toleration-empty-key-equal", lambda p: p["spec"].update(tolerations=[{"value": "x"}]),
     {("spec.tolerations[0].operator", I)}),
    ("toleration-seconds-needs-no-execute",
     lambda p: p["spec"].update(tolerations=[{"key": "k", "operator": "Exists",
                                              "effect": "NoSchedule", "tolerationSeconds": 5}]),
     {("spec.tolerations[0].effect", I)}),
    ("toleration-bad-effect-and-operator",
     lambda p: p["spec"].update(tolerations=[{"key": "k", "operator": "In", "effect": "Nope"}]),
     {("spec.tolerations[0].operator", NS), ("spec.tolerations[0].effect", NS)}),
    ("toleration-exists-with-value",
     lambda p: p["spec"].update(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
     {("spec.tolerations[0].operator", I)}),
    ("host-alias-bad",
     lambda p: p["spec"].update(hostAliases=[{"ip": "999.1.1.1", "hostnames": ["ok", "NO"]}]),
     {("spec.hostAliases[0].ip", I), ("spec.hostAliases[0].hostnames[1]", I)}),
    ("readiness-gate-bad", lambda p: p["spec"].update(readinessGates=[{"conditionType": "a/b/c"}]),
     {("spec.readinessGates[0].conditionType", I)}),
    ("scheduling-gate-duplicate",
     lambda p: p["spec"].update(schedulingGates=[{"name": "g"}, {"name": "g"}]),
     {("spec.schedulingGates[1]", D)}),
    ("node-name-with-scheduling-gates",
     lambda p: p["spec"].update(nodeName="n1", schedulingGates=[{"name": "g"}]),
     {("spec.nodeName", F)}),
    ("ephemeral-containers-on-create",
     lambda p: p["spec"].update(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
     {("spec.ephemeralContainers", F)}),
    ("volume-two-sources",
     lambda p: p["spec"].update(volumes=[{"name": "v", "emptyDir": {},
                                          "secret": {"secretName": "s"}}]),
     {("spec.volumes[0].secret", F)}),
    ("volume-no-source-no-name", lambda p: p["spec"].update(volumes=[{}]),
     {("spec.volumes[0]", R), ("spec.volumes[0].name", R)}),
    ("volume-mount-unknown",
     lambda p: _c(p).update(volumeMounts=[{"name": "nope", "mountPath": "/x"}]),
     {("spec.containers[0].volumeMounts[0].name", NF)}),
    ("volume-mount-path-duplicate",
     lambda p: (p["spec"].update(volumes=[{"name": "a", "emptyDir": {}},
                                          {"name": "b", "emptyDir": {}}]),
                _c(p).update(volumeMounts=[{"name": "a", "mountPath": "/x"},
                                           {"name": "b", "mountPath": "/x"}])),
     {("spec.containers[0].volumeMounts[1].mountPath", I)}),
    ("valid-service-account-token",
     lambda p: p["spec"].update(volumes=[_token_volume({"path": "token",
                                                        "expirationSeconds": 3607})]),
     set()),
    ("service-account-token-too-short-no-path",
     lambda p: p["spec"].update(volumes=[_token_volume({"expirationSeconds": 599})]),
     {("spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds", I),
      ("spec.volumes[0].projected.path", R)}),
    ("service-account-token-too-long-bad-path",
     lambda p: p["spec"].update(volumes=[_token_volume({"path": "/abs/../t",
                                                        "expirationSeconds": (1 << 32) + 1})]),
     {("spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds", I),
      ("spec.volumes[0].projected.path", I)}),
]


def _token_volume(token: dict[str, Any]) -> dict[str, Any]:
    return {"name": "kube-api-access-x", "projected": {"defaultMode": 0o644,
                                                       "sources": [{"serviceAccountToken": token}]}}


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in CREATE_CASES],
                         ids=[n for n, _, _ in CREATE_CASES])
def test_validate_pod(mutate: Mutator, expected: set[tuple[str, ErrorType]]) -> None:
    pod = _pod()
    mutate(pod)
    assert _errset(validate_pod(pod)) == expected


def test_validate_pod_messages() -> None:
    pod = _pod()
    _c(pod)["ports"][0]["protocol"] = "ICMP"
    pod["spec"]["restartPolicy"] = "Sometimes"
    texts = [str(e) for e in validate_pod(pod)]
    assert texts == [
        'spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: '
        '"SCTP", "TCP", "UDP"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"',
    ]


def test_service_account_token_messages_and_default() -> None:
    pod = _pod()
    pod["spec"]["volumes"] = [_token_volume({"path": "..t", "expirationSeconds": 60})]
    assert [str(e) for e in validate_pod(pod)] == [
        "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: Invalid "
        "value: 60: may not specify a duration less than 10 minutes",
        "spec.volumes[0].projected.path: Invalid value: \"..t\": must not start with '..'"]
    raw = _raw_pod()
    raw["spec"]["volumes"] = [{"name": "v", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}]}}]
    defaulted = set_defaults_pod(raw)["spec"]["volumes"][0]["projected"]
    assert defaulted == {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}


def test_env_var_name_message_and_relaxed_option() -> None:
    pod = _pod()
    _c(pod)["env"] = [{"name": "1ABC"}, {"name": "A B"}]
    errs = validate_pod(pod)
    assert str(errs[0]) == (
        'spec.containers[0].env[0].name: Invalid value: "1ABC": a valid environment variable '
        "name must consist of alphabetic characters, digits, '_', '-', or '.', and must not "
        "start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex "
        "used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')")
    relaxed = validate_pod(pod, PodValidationOptions(allow_relaxed_env_var_names=True))
    assert relaxed == []
    _c(pod)["env"] = [{"name": "A=B"}]
    assert _errset(validate_pod(pod, PodValidationOptions(allow_relaxed_env_var_names=True))) \
        == {("spec.containers[0].env[0].name", I)}


# ------------------------------------------------------------------------------ defaulting


@pytest.mark.parametrize(("path", "value"), [
    (("spec", "restartPolicy"), "Always"),
    (("spec", "dnsPolicy"), "ClusterFirst"),
    (("spec", "terminationGracePeriodSeconds"), 30),
    (("spec", "schedulerName"), "default-scheduler"),
    (("spec", "enableServiceLinks"), True),
    (("spec", "securityContext"), {}),
    (("spec", "containers", 0, "terminationMessagePath"), "/dev/termination-log"),
    (("spec", "containers", 0, "terminationMessagePolicy"), "File"),
    (("spec", "containers", 0, "imagePullPolicy"), "IfNotPresent"),
    (("spec", "containers", 0, "ports", 0, "protocol"), "TCP"),
], ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else None)
def test_pod_defaults(path: tuple[str | int, ...], value: object) -> None:
    cur: Any = _pod()
    for part in path:
        cur = cur[part]
    assert cur == value


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.27", "IfNotPresent"),
    ("docker.io/library/nginx", "Always"),
    ("registry.local:5000/team/app", "Always"),
    ("localhost/app:latest", "Always"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ("nginx:latest@sha256:" + "a" * 64, "Always"),
    ("NGINX", "IfNotPresent"),  # not a valid reference: the tag cannot be known
    ("", "IfNotPresent"),
    ("a" * 64, "IfNotPresent"),  # an image ID, not a name
], ids=lambda v: v[:30] or "empty")
def test_image_pull_policy_default(image: str, policy: str) -> None:
    pod = set_defaults_pod({"spec": {"containers": [{"name": "c", "image": image}]}})
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_probe_and_handler_defaults() -> None:
    raw = _raw_pod()
    raw["spec"]["containers"][0].update(
        readinessProbe={"httpGet": {"port": 80}},
        livenessProbe={"grpc": {"port": 9000}, "periodSeconds": 5},
        lifecycle={"preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
        env=[{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    c = set_defaults_pod(raw)["spec"]["containers"][0]
    assert c["readinessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                                   "timeoutSeconds": 1, "periodSeconds": 10,
                                   "successThreshold": 1, "failureThreshold": 3}
    assert c["livenessProbe"]["periodSeconds"] == 5
    assert c["livenessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/stop",
                                                    "scheme": "HTTP"}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"


def test_host_network_and_resource_defaults() -> None:
    raw = _raw_pod()
    raw["spec"]["hostNetwork"] = True
    raw["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"},
                                                 "requests": {"cpu": "500m"}}
    pod = set_defaults_pod(raw)
    c = pod["spec"]["containers"][0]
    assert c["ports"][0]["hostPort"] == 8080
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert validate_pod(pod) == []


@pytest.mark.parametrize(("status", "expected"), [
    ({"podIP": "10.0.0.1"}, {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}),
    ({"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]},
     {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}),
    ({"podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.1"}]},
     {"podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.2"}]}),
    ({"hostIP": "192.168.0.2"}, {"hostIP": "192.168.0.2", "hostIPs": [{"ip": "192.168.0.2"}]}),
], ids=["single-only", "list-only", "singular-wins", "host-ip"])
def test_pod_ip_reconciliation(status: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set_defaults_pod({"spec": {}, "status": status})["status"] == expected


def test_defaulting_does_not_mutate_input() -> None:
    raw = _raw_pod()
    before = copy.deepcopy(raw)
    set_defaults_pod(raw)
    prepare_pod_for_create(raw)
    assert raw == before


@pytest.mark.parametrize(("resources", "qos"), [
    ([{}], "BestEffort"),
    ([{"requests": {"cpu": "100m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}],
     "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m",
                                                            "memory": "1073741824"}}],
     "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ([{"requests": {"ephemeral-storage": "1Gi"}}], "BestEffort"),
], ids=["none", "requests-only", "equal", "equal-other-units", "one-container-unbounded",
        "non-qos-resource"])
def test_qos_class(resources: list[dict[str, Any]], qos: str) -> None:
    raw = {"spec": {"containers": [{"name": f"c{i}", "image": "x:1", "resources": r}
                                   for i, r in enumerate(resources)]}}
    assert pod_qos_class(set_defaults_pod(raw)) == qos
    assert prepare_pod_for_create(set_defaults_pod(raw))["status"] == {"phase": "Pending",
                                                                       "qosClass": qos}


@pytest.mark.parametrize(("text", "value"), [
    ("1", 1), ("500m", 0.5), ("1Gi", 2**30), ("1k", 1000), ("1e3", 1000), ("-2", -2),
    ("1.5", 1.5), ("bogus", None), (3, 3),
], ids=repr)
def test_parse_quantity(text: str | int, value: float | None) -> None:
    assert parse_quantity(text) == value


# ------------------------------------------------------------------------------ updates


def _stored() -> Pod:
    pod = prepare_pod_for_create(_pod())
    pod["metadata"].update(resourceVersion="7", uid="u-1",
                           creationTimestamp="2024-01-01T00:00:00Z")
    return pod


UPDATE_CASES: list[tuple[str, Mutator, Mutator, set[tuple[str, ErrorType]]]] = [
    ("no-change", lambda o: None, lambda n: None, set()),
    ("image-change", lambda o: None, lambda n: _c(n).update(image="nginx:1.28"), set()),
    ("labels-change", lambda o: None, lambda n: n["metadata"]["labels"].update(tier="fe"),
     set()),
    ("resource-version-missing", lambda o: None,
     lambda n: n["metadata"].pop("resourceVersion"), {("metadata.resourceVersion", I)}),
    ("name-change", lambda o: None, lambda n: n["metadata"].update(name="web-1"),
     {("metadata.name", I)}),
    ("add-container", lambda o: None, _second_container, {("spec.containers", F)}),
    ("remove-init-container",
     lambda o: o["spec"].update(initContainers=[dict(copy.deepcopy(_c(o)), name="init")]),
     lambda n: n["spec"].pop("initContainers"), {("spec.initContainers", F)}),
    ("blank-image", lambda o: None, lambda n: _c(n).update(image=""),
     {("spec.containers[0].image", R)}),
    ("restart-policy-change", lambda o: None, lambda n: n["spec"].update(restartPolicy="Never"),
     {("spec", F)}),
    ("port-change", lambda o: None, lambda n: _c(n)["ports"][0].update(containerPort=9090),
     {("spec", F)}),
    ("deadline-set", lambda o: None, lambda n: n["spec"].update(activeDeadlineSeconds=60),
     set()),
    ("deadline-lowered", lambda o: o["spec"].update(activeDeadlineSeconds=60),
     lambda n: n["spec"].update(activeDeadlineSeconds=30), set()),
    ("deadline-raised", lambda o: o["spec"].update(activeDeadlineSeconds=60),
     lambda n: n["spec"].update(activeDeadlineSeconds=90), {("spec.activeDeadlineSeconds", I)}),
    ("deadline-removed", lambda o: o["spec"].update(activeDeadlineSeconds=60),
     lambda n: n["spec"].pop("activeDeadlineSeconds"), {("spec.activeDeadlineSeconds", I)}),
    ("toleration-added", lambda o: None,
     lambda n: n["spec"].update(tolerations=[{"key": "k", "operator": "Exists"}]), set()),
    ("toleration-seconds-changed",
     lambda o: o["spec"].update(tolerations=[{"key": "k", "operator": "Exists",
                                              "effect": "NoExecute", "tolerationSeconds": 5}]),
     lambda n: n["spec"]["tolerations"][0].update(tolerationSeconds=10), set()),
    ("toleration-modified",
     lambda o: o["spec"].update(tolerations=[{"key": "k", "operator": "Exists"}]),
     lambda n: n["spec"]["tolerations"][0].update(key="other"), {("spec.tolerations", F)}),
    ("scheduling-gate-removed",
     lambda o: o["spec"].update(schedulingGates=[{"name": "a"}, {"name": "b"}]),
     lambda n: n["spec"].update(schedulingGates=[{"name": "b"}]), set()),
    ("scheduling-gate-added",
     lambda o: o["spec"].update(schedulingGates=[{"name": "a"}]),
     lambda n: n["spec"].update(schedulingGates=[{"name": "a"}, {"name": "b"}]),
     {("spec.schedulingGates[1].name", F)}),
    ("gated-node-selector-added",
     lambda o: o["spec"].update(schedulingGates=[{"name": "a"}]),
     lambda n: n["spec"].update(nodeSelector={"zone": "a"}), set()),
    ("gated-node-selector-mutated",
     lambda o: o["spec"].update(schedulingGates=[{"name": "a"}], nodeSelector={"zone": "a"}),
     lambda n: n["spec"].update(nodeSelector={"zone": "b"}), {("spec.nodeSelector", I)}),
    ("ungated-node-selector-added", lambda o: None,
     lambda n: n["spec"].update(nodeSelector={"zone": "a"}), {("spec", F)}),
    ("grace-negative-to-one",
     lambda o: o["spec"].update(terminationGracePeriodSeconds=-1),
     lambda n: n["spec"].update(terminationGracePeriodSeconds=1), set()),
    ("grace-changed",
     lambda o: None, lambda n: n["spec"].update(terminationGracePeriodSeconds=5),
     {("spec", F)}),
    ("mirror-annotation-added", lambda o: o["spec"].update(nodeName="n1"),
     lambda n: n["metadata"].update(annotations={"kubernetes.io/config.mirror": "x"}),
     {("metadata.annotations[kubernetes.io/config.mirror]", F)}),
    ("null-vs-absent-equal", lambda o: o["spec"].update(hostNetwork=False),
     lambda n: n["spec"].pop("hostNetwork"), set()),
]


@pytest.mark.parametrize(("old_mut", "new_mut", "expected"),
                         [(o, n, e) for _, o, n, e in UPDATE_CASES],
                         ids=[c[0] for c in UPDATE_CASES])
def test_validate_pod_update(old_mut: Mutator, new_mut: Mutator,
                             expected: set[tuple[str, ErrorType]]) -> None:
    old = _stored()
    old_mut(old)
    new = copy.deepcopy(old)
    new_mut(new)
    assert _errset(validate_pod_update(new, old)) == expected


def test_pod_update_forbidden_message() -> None:
    old = _stored()
    new = copy.deepcopy(old)
    new["spec"]["restartPolicy"] = "Never"
    errs = validate_pod_update(new, old)
    assert len(errs) == 1
    assert errs[0].detail.startswith(
        "pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to "
        "be set to 1 if it was previously negative)\n")
    assert '- restartPolicy: "Always"' in errs[0].detail
    assert '+ restartPolicy: "Never"' in errs[0].detail


def test_prepare_for_update_keeps_status() -> None:
    old = _stored()
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Running"}
    assert prepare_pod_for_update(new, old)["status"] == old["status"]


# ------------------------------------------------------------------------------ status updates


def _running() -> Pod:
    pod = _stored()
    pod["spec"]["nodeName"] = "n1"
    pod["status"].update(phase="Running", podIP="10.0.0.5", podIPs=[{"ip": "10.0.0.5"}])
    return pod


STATUS_CASES: list[tuple[str, Mutator, set[tuple[str, ErrorType]]]] = [
    ("no-change", lambda n: None, set()),
    ("dual-stack", lambda n: n["status"].update(podIPs=[{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]),
     set()),
    ("two-ipv4", lambda n: n["status"].update(podIPs=[{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}]),
     {("status.podIPs", I)}),
    ("duplicate-ip",
     lambda n: n["status"].update(podIPs=[{"ip": "10.0.0.5"}, {"ip": "10.0.0.5"}]),
     {("status.podIPs", I), ("status.podIPs[1]", D)}),
    ("three-ips",
     lambda n: n["status"].update(podIPs=[{"ip": "10.0.0.5"}, {"ip": "fd00::5"},
                                          {"ip": "fd00::6"}]),
     {("status.podIPs", I)}),
    ("bad-ip", lambda n: n["status"].update(podIPs=[{"ip": "10.0.0.300"}]),
     {("status.podIPs[0]", I)}),
    ("bad-ip-in-pair",
     lambda n: n["status"].update(podIPs=[{"ip": "nope"}, {"ip": "fd00::5"}]),
     {("status.podIPs[0]", I), ("status.podIPs", IE), ("status.podIPs", I)}),
    ("host-ip-mismatch",
     lambda n: n["status"].update(hostIP="192.168.0.2", hostIPs=[{"ip": "192.168.0.3"}]),
     {("status.hostIPs[0].ip", I)}),
    ("node-name-changed", lambda n: n["spec"].update(nodeName="n2"), {("status.nodeName", F)}),
    ("qos-changed", lambda n: n["status"].update(qosClass="Guaranteed"),
     {("status.qosClass", I)}),
    ("nominated-node-bad", lambda n: n["status"].update(nominatedNodeName="N_1"),
     {("status.nominatedNodeName", I)}),
    ("system-condition-ok",
     lambda n: n["status"].update(conditions=[{"type": "Ready", "status": "True"}]), set()),
    ("custom-condition-bad",
     lambda n: n["status"].update(conditions=[{"type": "not valid!", "status": "True"}]),
     {("metadata.conditions[0].Type", I)}),
    ("custom-condition-ok",
     lambda n: n["status"].update(conditions=[{"type": "example.com/Warm", "status": "True"}]),
     set()),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in STATUS_CASES],
                         ids=[n for n, _, _ in STATUS_CASES])
def test_validate_pod_status_update(mutate: Mutator,
                                    expected: set[tuple[str, ErrorType]]) -> None:
    old = _running()
    new = copy.deepcopy(old)
    mutate(new)
    assert _errset(validate_pod_status_update(new, old)) == expected


@pytest.mark.parametrize(("restart", "exit_code", "expected"), [
    ("Always", 0, set()),
    ("Never", 0, {("status.containerStatuses[0].state", F)}),
    ("OnFailure", 0, {("status.containerStatuses[0].state", F)}),
    ("OnFailure", 1, set()),
], ids=["always", "never", "onfailure-success", "onfailure-failed"])
def test_container_state_transition(restart: str, exit_code: int,
                                    expected: set[tuple[str, ErrorType]]) -> None:
    old = _running()
    old["spec"]["restartPolicy"] = restart
    old["status"]["containerStatuses"] = [
        {"name": "web", "state": {"terminated": {"exitCode": exit_code}}}]
    new = copy.deepcopy(old)
    new["status"]["containerStatuses"] = [{"name": "web", "state": {"running": {}}}]
    assert _errset(validate_pod_status_update(new, old)) == expected


def test_prepare_for_status_update_keeps_spec() -> None:
    old = _running()
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = "elsewhere"
    new["status"].pop("qosClass")
    prepared = prepare_pod_for_status_update(new, old)
    assert prepared["spec"] == old["spec"]
    assert prepared["status"]["qosClass"] == old["status"]["qosClass"]
    assert validate_pod_status_update(prepared, old) == []


def test_pod_ips_messages() -> None:
    old = _running()
    new = copy.deepcopy(old)
    new["status"]["podIPs"] = [{"ip": "10.0.0.5"}, {"ip": "10.0.0.5"}]
    assert [str(e) for e in validate_pod_status_update(new, old)] == [
        "status.podIPs: Invalid value: []core.PodIP{core.PodIP{IP:\"10.0.0.5\"}, "
        "core.PodIP{IP:\"10.0.0.5\"}}: may specify no more than one IP for each IP family",
        'status.podIPs[1]: Duplicate value: core.PodIP{IP:"10.0.0.5"}',
    ]
