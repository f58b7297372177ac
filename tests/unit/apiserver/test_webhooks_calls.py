"""Admission webhooks called for real: an aiohttp HTTPS webhook server on 127.0.0.1 (port 0)
with a serving certificate from a CA made for the test, and svcnet's dispatcher
(svcnet/apiserver/webhookdispatch.py, webhookclient.py) calling it.

Conventions: the server answers each path with a behaviour (``allow``, ``deny``, ``patch``...)
and records every AdmissionReview it receives; configurations are defaulted dicts as the
registry stores them; the write is a Pod ``web/p`` create unless said."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver import webhookclient
from svcnet.apiserver.certs import ensure_ca
from svcnet.apiserver.webhookclient import endpoint_resolver, pick_endpoint, webhook_url
from svcnet.apiserver.webhookdispatch import WebhookDispatcher
from svcnet.apiserver.webhooks import (
    ClientConfig,
    GroupVersionKind,
    GroupVersionResource,
    WebhookAttributes,
    convert_served,
)
from svcnet.registry import requestwarnings
from tests.unit.apiserver.webhook_backend import (
    SERVICE_HOST,
    Behaviour,
    Obj,
    WebhookServer,
    allow,
    configuration,
    patch_of,
    reply,
    serving_webhooks,
    url_client,
    webhook,
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WebhookServer]:
    async with serving_webhooks(tmp_path) as backend:
        yield backend


async def no_service(namespace: str, name: str, port: int) -> tuple[str, int]:
    raise AssertionError("no Service is resolved in this test")


async def labels_of(name: str) -> dict[str, str] | None:
    return {"web": {"team": "a"}}.get(name)


@pytest.fixture
async def dispatchers() -> AsyncIterator[list[WebhookDispatcher]]:
    made: list[WebhookDispatcher] = []
    yield made
    for d in made:
        await d.close()


@pytest.fixture
def make(dispatchers: list[WebhookDispatcher]) -> Callable[..., WebhookDispatcher]:
    def build(mutating: tuple[Obj, ...] = (), validating: tuple[Obj, ...] = (),
              resolve: Any = no_service) -> WebhookDispatcher:
        d = WebhookDispatcher(mutating=lambda: list(mutating),
                              validating=lambda: list(validating),
                              namespace_labels=labels_of, resolve_service=resolve)
        dispatchers.append(d)
        return d
    return build


POD: Obj = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def pod_create(obj: Obj | None = None, *, dry_run: bool = False) -> WebhookAttributes:
    return WebhookAttributes("CREATE", GroupVersionResource("", "v1", "pods"), "",
                             GroupVersionKind("", "v1", "Pod"), "web", "p",
                             json.loads(json.dumps(POD if obj is None else obj)), None,
                             dry_run, {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})


# -- validating -------------------------------------------------------------------------------

async def test_allowed(server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/allow"] = allow
    d = make(validating=(configuration("v", webhook("allow.example.com",
                                                    url_client(server, "/allow"))),))
    assert d.has_validating and not d.has_mutating
    await d.validate(pod_create())
    (review,) = server.calls("/allow")
    request = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert (request["operation"], request["namespace"], request["name"]) == ("CREATE", "web",
                                                                             "p")
    assert request["object"] == POD and request["oldObject"] is None
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert server.queries == ["timeout=10s"]
    assert server.hosts == [f"127.0.0.1:{server.port}"]


async def test_denied_with_message_and_code(server: WebhookServer,
                                            make: Callable[..., WebhookDispatcher]) -> None:
    async def deny(review: Obj) -> tuple[int, Any]:
        return 200, reply(review, allowed=False,
                          status={"code": 403, "reason": "Forbidden",
                                  "message": "pods must not run as root"})
    server.behaviours["/deny"] = deny
    server.behaviours["/allow"] = allow
    d = make(validating=(configuration("a", webhook("allow.example.com",
                                                    url_client(server, "/allow"))),
                         configuration("b", webhook("deny.example.com",
                                                    url_client(server, "/deny")))))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert (e.value.code, e.value.reason) == (403, "Forbidden")
    assert e.value.message == ('admission webhook "deny.example.com" denied the request: '
                               "pods must not run as root")
    assert len(server.calls("/allow")) == 1  # every validating webhook is called


async def test_validating_webhooks_run_concurrently(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    both = asyncio.Event()
    arrived = 0

    async def rendezvous(review: Obj) -> tuple[int, Any]:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)  # only returns if the other call is in flight
        return 200, reply(review, allowed=True)
    server.behaviours["/meet"] = rendezvous
    d = make(validating=(configuration("v", webhook("a.example.com", url_client(server, "/meet")),
                                       webhook("b.example.com", url_client(server, "/meet"))),))
    await d.validate(pod_create())
    assert len(server.calls("/meet")) == 2


async def test_warnings_go_to_the_request(server: WebhookServer,
                                          make: Callable[..., WebhookDispatcher]) -> None:
    async def warn(review: Obj) -> tuple[int, Any]:
        return 200, reply(review, allowed=True, warnings=["image tag latest is mutable"])
    server.behaviours["/warn"] = warn
    d = make(validating=(configuration("v", webhook("warn.example.com",
                                                    url_client(server, "/warn"))),))
    with requestwarnings.recording() as warnings:
        await d.validate(pod_create())
    assert warnings == ["image tag latest is mutable"]


async def test_selectors_decide_who_is_called(server: WebhookServer,
                                              make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/allow"] = allow
    d = make(validating=(configuration("v", webhook(
        "team-b.example.com", url_client(server, "/allow"),
        namespaceSelector={"matchLabels": {"team": "b"}}), webhook(
        "db.example.com", url_client(server, "/allow"),
        objectSelector={"matchLabels": {"app": "db"}})),))
    await d.validate(pod_create())
    assert server.received == []


def conditions(*expressions: str) -> list[Obj]:
    return [{"name": f"c{i}", "expression": e} for i, e in enumerate(expressions)]


async def test_match_conditions_decide_who_is_called(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/allow"] = allow
    d = make(validating=(configuration("v", webhook(
        "skip.example.com", url_client(server, "/skip"),
        matchConditions=conditions("request.operation == 'CREATE'",
                                   "object.metadata.labels.app == 'db'")), webhook(
        "call.example.com", url_client(server, "/allow"),
        matchConditions=conditions(
            "!(request.userInfo.username == 'system:kube-scheduler')",
            "has(object.metadata.labels) && object.metadata.labels.app == 'web'",
            "oldObject == null && request.namespace == 'web' && !request.dryRun",
            "request.resource.resource == 'pods' && request.kind.kind == 'Pod'",
            "request.options.kind == 'CreateOptions'"))),))
    await d.validate(pod_create())
    assert server.calls("/skip") == []  # its second condition is false: not called
    assert len(server.calls("/allow")) == 1


async def test_a_match_condition_error_fails_closed_under_fail(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/allow"] = allow
    d = make(validating=(configuration("v", webhook(
        "err.example.com", url_client(server, "/allow"),
        matchConditions=conditions("true", "object.spec.nosuch == 1"))),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert (e.value.code, e.value.reason) == (403, "Forbidden")
    assert e.value.message == ('pods "p" is forbidden: expression \'object.spec.nosuch == 1\' '
                               "resulted in error: no such key: nosuch")
    assert server.received == []


async def test_a_match_condition_error_is_skipped_under_ignore_or_beside_a_false_one(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/allow"] = allow
    d = make(mutating=(configuration("m", webhook(
        "ignored.example.com", url_client(server, "/allow"), failurePolicy="Ignore",
        matchConditions=conditions("object.spec.nosuch == 1")), webhook(
        "false.example.com", url_client(server, "/allow"),
        matchConditions=conditions("object.spec.nosuch == 1", "false"))),))
    attrs = pod_create()
    assert await d.mutate(attrs) is attrs.object
    assert server.received == []


async def test_mutating_match_conditions_see_the_object_as_patched(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/label"] = label_patcher("injected", "yes")
    server.behaviours["/allow"] = allow
    d = make(mutating=(configuration("a", webhook("label.example.com",
                                                  url_client(server, "/label"))),
                       configuration("b", webhook(
                           "after.example.com", url_client(server, "/allow"),
                           matchConditions=conditions(
                               "object.metadata.labels.injected == 'yes'")))))
    await d.mutate(pod_create())
    assert len(server.calls("/allow")) == 1


# -- mutating ---------------------------------------------------------------------------------

def label_patcher(key: str, value: str, *, log: list[Obj] | None = None) -> Behaviour:
    async def patch(review: Obj) -> tuple[int, Any]:
        obj = review["request"]["object"]
        if log is not None:
            log.append(obj)
        if obj["metadata"].get("labels", {}).get(key) == value:
            return 200, reply(review, allowed=True)
        return 200, reply(review, allowed=True, patchType="JSONPatch", patch=patch_of(
            {"op": "add", "path": f"/metadata/labels/{key}", "value": value}))
    return patch


async def test_mutating_patch_applied(server: WebhookServer,
                                      make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/label"] = label_patcher("injected", "yes")
    d = make(mutating=(configuration("m", webhook("label.example.com",
                                                  url_client(server, "/label"))),))
    attrs = pod_create()
    out = await d.mutate(attrs)
    assert out is not None and out["metadata"]["labels"] == {"app": "web", "injected": "yes"}
    assert attrs.object == POD  # the given object is not changed in place


async def test_a_large_answer_in_many_reads_is_read_whole(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    """A sidecar injector's patch is tens of KB, which arrives in several reads (a 2 MB
    annotation here): the answer is read to its end, not what the first read got."""
    big = "x" * (2 << 20)

    async def annotate(review: Obj) -> tuple[int, Any]:
        return 200, reply(review, allowed=True, patchType="JSONPatch", patch=patch_of(
            {"op": "add", "path": "/metadata/annotations", "value": {"big": big}}))

    server.behaviours["/big"] = annotate
    d = make(mutating=(configuration("m", webhook("big.example.com",
                                                  url_client(server, "/big"))),))
    out = await d.mutate(pod_create())
    assert out is not None and out["metadata"]["annotations"] == {"big": big}


async def test_an_answer_past_the_limit_is_a_failed_call(
        server: WebhookServer, make: Callable[..., WebhookDispatcher],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhookclient, "MAX_RESPONSE_BYTES", 1 << 20)
    server.behaviours["/big"] = lambda review: asyncio.sleep(0, (200, reply(
        review, allowed=True, warnings=["w" * (2 << 20)])))
    d = make(validating=(configuration("v", webhook("big.example.com",
                                                    url_client(server, "/big"))),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert e.value.code == 500
    assert "larger than 1048576 bytes" in e.value.message


async def test_no_patch_returns_the_object_itself(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/allow"] = allow
    d = make(mutating=(configuration("m", webhook("noop.example.com",
                                                  url_client(server, "/allow"))),))
    attrs = pod_create()
    assert await d.mutate(attrs) is attrs.object


async def test_two_mutating_webhooks_in_order(server: WebhookServer,
                                              make: Callable[..., WebhookDispatcher]) -> None:
    seen: list[Obj] = []
    server.behaviours["/first"] = label_patcher("first", "1")
    server.behaviours["/second"] = label_patcher("second", "2", log=seen)
    # Configurations are taken by name: "a-..." before "b-...", whatever the list's order.
    d = make(mutating=(configuration("b-second", webhook("second.example.com",
                                                         url_client(server, "/second"))),
                       configuration("a-first", webhook("first.example.com",
                                                        url_client(server, "/first")))))
    out = await d.mutate(pod_create())
    assert seen[0]["metadata"]["labels"] == {"app": "web", "first": "1"}
    assert out is not None and out["metadata"]["labels"] == {"app": "web", "first": "1",
                                                             "second": "2"}


async def test_reinvocation_if_needed(server: WebhookServer,
                                      make: Callable[..., WebhookDispatcher]) -> None:
    first_saw: list[Obj] = []
    never_saw: list[Obj] = []
    server.behaviours["/first"] = label_patcher("first", "1", log=first_saw)
    server.behaviours["/never"] = label_patcher("never", "1", log=never_saw)
    server.behaviours["/second"] = label_patcher("second", "2")
    d = make(mutating=(configuration(
        "m",
        webhook("first.example.com", url_client(server, "/first"),
                reinvocationPolicy="IfNeeded"),
        webhook("never.example.com", url_client(server, "/never")),
        webhook("second.example.com", url_client(server, "/second"))),))
    out = await d.mutate(pod_create())
    # The second webhook's change has the IfNeeded one called again, once, seeing it; the
    # one with reinvocationPolicy Never is called once.
    assert [o["metadata"]["labels"].get("second") for o in first_saw] == [None, "2"]
    assert len(never_saw) == 1
    assert out is not None and out["metadata"]["labels"] == {
        "app": "web", "first": "1", "never": "1", "second": "2"}


async def test_patch_that_does_not_apply_is_a_500_even_when_ignored(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    async def bad(review: Obj) -> tuple[int, Any]:
        return 200, reply(review, allowed=True, patchType="JSONPatch",
                          patch=patch_of({"op": "remove", "path": "/spec/nosuch"}))
    server.behaviours["/bad"] = bad
    d = make(mutating=(configuration("m", webhook("bad.example.com", url_client(server, "/bad"),
                                                  failurePolicy="Ignore")),))
    with pytest.raises(StatusError) as e:
        await d.mutate(pod_create())
    assert (e.value.code, e.value.message) == (
        500, "Internal error occurred: Unable to remove nonexistent key: nosuch: missing value")


async def test_non_json_patch_type(server: WebhookServer,
                                   make: Callable[..., WebhookDispatcher]) -> None:
    async def merge(review: Obj) -> tuple[int, Any]:
        return 200, reply(review, allowed=True, patchType="JSONMergePatch",
                          patch=patch_of({"op": "add", "path": "/metadata/labels/x",
                                          "value": "y"}))
    server.behaviours["/merge"] = merge
    d = make(mutating=(configuration("m", webhook("merge.example.com",
                                                  url_client(server, "/merge"))),))
    with pytest.raises(StatusError) as e:
        await d.mutate(pod_create())
    assert (e.value.code, e.value.reason) == (500, "InternalError")
    assert e.value.message == ('Internal error occurred: failed calling webhook '
                               '"merge.example.com": unsupported patch type "JSONMergePatch"')


async def test_in_tree_changes_between_rounds_reinvoke(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    saw: list[Obj] = []
    server.behaviours["/first"] = label_patcher("first", "1", log=saw)
    d = make(mutating=(configuration("m", webhook("first.example.com",
                                                  url_client(server, "/first"),
                                                  reinvocationPolicy="IfNeeded")),))
    # Its own change does not call a webhook again...
    await d.mutate(pod_create())
    assert len(saw) == 1

    # ...but the server's own admissions changing the object after it does.
    def in_tree(obj: Obj) -> Obj:
        out: Obj = json.loads(json.dumps(obj))
        out["metadata"]["labels"]["in-tree"] = "yes"
        return out
    saw.clear()
    out = await d.mutate(pod_create(), rerun_in_tree=in_tree)
    assert [o["metadata"]["labels"].get("in-tree") for o in saw] == [None, "yes"]
    assert out is not None and out["metadata"]["labels"]["in-tree"] == "yes"


HPA_V2: Obj = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "h", "namespace": "web", "labels": {"app": "web"}},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": "d"},
                        "minReplicas": 1, "maxReplicas": 3,
                        "metrics": [{"type": "Resource", "resource": {
                            "name": "cpu", "target": {"type": "Utilization",
                                                      "averageUtilization": 50}}}]}}


async def test_an_equivalent_version_is_sent_and_converted_back(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    saw: list[Obj] = []
    server.behaviours["/label"] = label_patcher("seen", "v2", log=saw)
    v2_only = webhook("v2.example.com", url_client(server, "/label"), rules=[{
        "operations": ["CREATE"], "apiGroups": ["autoscaling"], "apiVersions": ["v2"],
        "resources": ["horizontalpodautoscalers"], "scope": "*"}])
    d = make(mutating=(configuration("m", v2_only),))
    v1 = convert_served(HPA_V2, GroupVersionKind("autoscaling", "v1", "HorizontalPodAutoscaler"))
    attrs = WebhookAttributes("CREATE",
                              GroupVersionResource("autoscaling", "v1", "horizontalpodautoscalers"),
                              "", GroupVersionKind("autoscaling", "v1", "HorizontalPodAutoscaler"),
                              "web", "h", v1, None)
    out = await d.mutate(attrs)
    (review,) = server.calls("/label")
    assert review["request"]["kind"]["version"] == "v2"
    assert review["request"]["requestKind"]["version"] == "v1"
    assert saw[0]["spec"]["metrics"] == HPA_V2["spec"]["metrics"]
    assert out is not None and out["apiVersion"] == "autoscaling/v1"
    assert out["spec"]["targetCPUUtilizationPercentage"] == 50
    assert out["metadata"]["labels"] == {"app": "web", "seen": "v2"}
    exact = make(mutating=(configuration("m", {**v2_only, "matchPolicy": "Exact"}),))
    assert await exact.mutate(attrs) is attrs.object


# -- failures ---------------------------------------------------------------------------------

async def slow(review: Obj) -> tuple[int, Any]:
    await asyncio.sleep(3)
    return 200, reply(review, allowed=True)


async def test_timeout_with_fail(server: WebhookServer,
                                 make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/slow"] = slow
    d = make(validating=(configuration("v", webhook("slow.example.com",
                                                    url_client(server, "/slow"),
                                                    timeoutSeconds=1)),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert (e.value.code, e.value.reason) == (500, "InternalError")
    assert e.value.message == (
        'Internal error occurred: failed calling webhook "slow.example.com": failed to call '
        f'webhook: Post "https://127.0.0.1:{server.port}/slow?timeout=1s": context deadline '
        "exceeded")
    assert e.value.to_status()["details"] == {"causes": [{"message": e.value.message[
        len("Internal error occurred: "):]}]}


async def test_timeout_with_ignore(server: WebhookServer,
                                   make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/slow"] = slow
    server.behaviours["/label"] = label_patcher("after", "slow")
    d = make(mutating=(configuration("m", webhook("slow.example.com",
                                                  url_client(server, "/slow"),
                                                  timeoutSeconds=1, failurePolicy="Ignore"),
                                     webhook("label.example.com",
                                             url_client(server, "/label"))),))
    out = await d.mutate(pod_create())
    assert out is not None and out["metadata"]["labels"]["after"] == "slow"


async def test_unreachable_url(make: Callable[..., WebhookDispatcher], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = make(validating=(configuration("v", webhook(
        "gone.example.com", {"url": f"https://127.0.0.1:{port}/x"})),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert e.value.message == (
        'Internal error occurred: failed calling webhook "gone.example.com": failed to call '
        f'webhook: Post "https://127.0.0.1:{port}/x?timeout=10s": dial tcp 127.0.0.1:{port}: '
        "connect: connection refused")


async def test_bad_ca(server: WebhookServer, make: Callable[..., WebhookDispatcher],
                      tmp_path: Path) -> None:
    server.behaviours["/allow"] = allow
    ensure_ca(tmp_path / "other")
    other_ca = (tmp_path / "other" / "pki" / "ca.crt").read_bytes()
    d = make(validating=(configuration("v", webhook(
        "allow.example.com", url_client(server, "/allow", ca=other_ca))),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert e.value.message.endswith(
        ": tls: failed to verify certificate: x509: certificate signed by unknown authority")
    assert server.received == []


async def test_wrong_uid(server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    async def other_uid(review: Obj) -> tuple[int, Any]:
        return 200, reply(review, allowed=True, uid="not-yours")
    server.behaviours["/uid"] = other_uid
    d = make(validating=(configuration("v", webhook("uid.example.com",
                                                    url_client(server, "/uid"))),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    uid = server.calls("/uid")[0]["request"]["uid"]
    assert e.value.message == (
        'Internal error occurred: failed calling webhook "uid.example.com": received invalid '
        f'webhook response: expected response.uid="{uid}", got "not-yours"')


async def test_an_error_answer(server: WebhookServer,
                               make: Callable[..., WebhookDispatcher]) -> None:
    async def boom(review: Obj) -> tuple[int, Any]:
        return 500, "it broke"
    server.behaviours["/boom"] = boom
    d = make(validating=(configuration("v", webhook("boom.example.com",
                                                    url_client(server, "/boom"))),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert e.value.message.endswith(
        'failed to call webhook: an error on the server ("it broke") has prevented the '
        "request from succeeding")


async def test_dry_run_with_side_effects(server: WebhookServer,
                                         make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/allow"] = allow
    d = make(validating=(configuration("v", webhook("effects.example.com",
                                                    url_client(server, "/allow"),
                                                    sideEffects="Unknown",
                                                    failurePolicy="Ignore")),))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create(dry_run=True))
    assert (e.value.code, e.value.reason, e.value.message) == (
        400, "BadRequest", 'admission webhook "effects.example.com" does not support dry run')
    assert server.received == []
    none_on_dry_run = make(validating=(configuration("v", webhook(
        "quiet.example.com", url_client(server, "/allow"), sideEffects="NoneOnDryRun")),))
    await none_on_dry_run.validate(pod_create(dry_run=True))
    assert server.calls("/allow")[0]["request"]["dryRun"] is True


async def test_v1beta1_review(server: WebhookServer,
                              make: Callable[..., WebhookDispatcher]) -> None:
    async def beta(review: Obj) -> tuple[int, Any]:
        assert review["apiVersion"] == "admission.k8s.io/v1beta1"
        return 200, {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                     "response": {"allowed": True, "patch": patch_of(
                         {"op": "add", "path": "/metadata/labels/beta", "value": "1"})}}
    server.behaviours["/beta"] = beta
    d = make(mutating=(configuration("m", webhook("beta.example.com", url_client(server, "/beta"),
                                                  admissionReviewVersions=["v1beta1"])),))
    out = await d.mutate(pod_create())
    assert out is not None and out["metadata"]["labels"]["beta"] == "1"


# -- Services ---------------------------------------------------------------------------------

async def test_service_is_called_at_its_endpoint_with_its_dns_name(
        server: WebhookServer, make: Callable[..., WebhookDispatcher]) -> None:
    server.behaviours["/validate"] = allow
    asked: list[tuple[str, str, int]] = []

    async def resolve(namespace: str, name: str, port: int) -> tuple[str, int]:
        asked.append((namespace, name, port))
        return "127.0.0.1", server.port
    client = {"service": {"namespace": "webhooks", "name": "hook", "path": "/validate",
                          "port": 443},
              "caBundle": base64.b64encode(server.ca_pem).decode()}
    d = make(validating=(configuration("v", webhook("svc.example.com", client)),),
             resolve=resolve)
    await d.validate(pod_create())
    assert asked == [("webhooks", "hook", 443)]
    assert server.hosts == [f"{SERVICE_HOST}:443"]  # and the certificate named it


async def test_service_without_endpoints(make: Callable[..., WebhookDispatcher]) -> None:
    async def get_service(namespace: str, name: str) -> Obj | None:
        return {"metadata": {"name": name}, "spec": {"ports": [{"port": 443}]}}

    async def list_slices(namespace: str, name: str) -> list[Obj]:
        return []
    client = {"service": {"namespace": "webhooks", "name": "hook", "port": 443}}
    d = make(validating=(configuration("v", webhook("svc.example.com", client)),),
             resolve=endpoint_resolver(get_service, list_slices))
    with pytest.raises(StatusError) as e:
        await d.validate(pod_create())
    assert e.value.message == (
        'Internal error occurred: failed calling webhook "svc.example.com": failed to call '
        f'webhook: Post "https://{SERVICE_HOST}:443?timeout=10s": no endpoints available for '
        'service "hook"')


def test_pick_endpoint_takes_a_ready_one_on_the_named_port() -> None:
    service = {"metadata": {"name": "hook"}, "spec": {
        "ipFamilies": ["IPv4"],
        "ports": [{"name": "metrics", "port": 9090}, {"name": "https", "port": 443,
                                                      "targetPort": "webhook"}]}}
    slices = [
        {"addressType": "IPv4", "ports": [{"name": "metrics", "port": 9090}],
         "endpoints": [{"addresses": ["10.244.1.9"]}]},
        {"addressType": "IPv4", "ports": [{"name": "https", "port": 8443}],
         "endpoints": [{"addresses": ["10.244.1.2"], "conditions": {"ready": False}},
                       {"addresses": ["10.244.1.3"], "conditions": {"ready": True}}]}]
    for _ in range(10):
        assert pick_endpoint(service, slices, 443) == ("10.244.1.3", 8443)
    with pytest.raises(StatusError, match='no service port 80 found for service "hook"'):
        pick_endpoint(service, slices, 80)
    with pytest.raises(StatusError, match='unsupported service type "ExternalName"'):
        pick_endpoint({"metadata": {"name": "x"}, "spec": {"type": "ExternalName"}}, [], 443)


def test_webhook_urls_as_upstream_names_them() -> None:
    assert webhook_url(ClientConfig(url="https://h:8443/a//b/"), 5) == \
        "https://h:8443/a/b?timeout=5s"
    assert webhook_url(ClientConfig(service_namespace="n", service_name="s",
                                    service_path="/v", service_port=9443), 30) == \
        "https://s.n.svc:9443/v?timeout=30s"


async def test_no_configuration_is_the_fast_path(make: Callable[..., WebhookDispatcher]) -> None:
    d = make()
    assert not d.has_mutating and not d.has_validating
    attrs = pod_create()
    assert await d.mutate(attrs) is attrs.object
    await d.validate(replace(attrs, operation="UPDATE"))
