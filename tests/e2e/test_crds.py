"""CustomResourceDefinitions and custom resources through a real `svcnet server` (its own, so it
can be restarted), the real kubectl and the official Python client (ApiextensionsV1Api,
CustomObjectsApi): a CRD with a schema, a status subresource and printer columns; its objects
created, listed as a Table, watched, patched, validated (422 with field paths, a CEL rule's
too), pruned and defaulted; a namespace's objects gone with it; the CRD's objects gone with it; a restart keeps
serving them; owner references are honoured both ways by the garbage collector."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import Cluster, start_server, stop_server

Obj = dict[str, Any]
GROUP = f"t{uuid.uuid4().hex[:8]}.example.com"
CRD_NAME = f"widgets.{GROUP}"

# As controller-gen writes them: apiVersion, kind and metadata declared at the root.
SCHEMA: Obj = {"openAPIV3Schema": {"type": "object", "properties": {
    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
    "metadata": {"type": "object"},
    "spec": {"type": "object", "required": ["size"], "properties": {
        "size": {"type": "integer", "minimum": 1, "maximum": 10},
        "replicas": {"type": "integer"},
        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"}},
        "x-kubernetes-validations": [{"rule": "!has(self.replicas) || self.replicas <= "
                                              "self.size * 10",
                                      "message": "replicas may not exceed ten times size"}]},
    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "conditions": {
        "type": "array", "items": {"type": "object", "properties": {
            "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}}
CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {"group": GROUP, "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                       "shortNames": ["wdg"], "categories": ["all"]},
             "versions": [{
                 "name": "v1", "served": True, "storage": True,
                 "subresources": {"status": {}, "scale": {
                     "specReplicasPath": ".spec.replicas",
                     "statusReplicasPath": ".status.replicas"}},
                 "additionalPrinterColumns": [
                     {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                     {"name": "Ready", "type": "string",
                      "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                     {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                 "schema": SCHEMA},
                 {"name": "v1beta1", "served": True, "storage": False, "schema": SCHEMA}]}}


def _widget(name: str, **spec: Any) -> Obj:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": spec}


def _wait(what: str, check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("crds")
    proc = start_server(data_dir)
    cluster = Cluster(data_dir, data_dir / "kubeconfig", proc,
                      tmp_path_factory.mktemp("kcache"))
    try:
        yield cluster
    finally:
        assert stop_server(cluster.process) == 0


def _apis(cluster: Cluster) -> tuple[client.CustomObjectsApi, client.ApiextensionsV1Api,
                                     client.ApiClient]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    return client.CustomObjectsApi(api), client.ApiextensionsV1Api(api), api


def test_crd_lifecycle(server: Cluster, tmp_path: Path) -> None:
    out = server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(CRD)).stdout
    assert out.strip() == f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME} created"
    server.kubectl("wait", "--for", "condition=established", f"crd/{CRD_NAME}",
                   "--timeout=20s")
    assert server.kubectl("get", "crd", CRD_NAME, "--no-headers").stdout.split()[0] == CRD_NAME
    resources = server.kubectl("api-resources", f"--api-group={GROUP}").stdout.splitlines()
    assert resources[1].split() == ["widgets", "wdg", f"{GROUP}/v1", "true", "Widget"]
    explained = server.kubectl("explain", "widgets.spec").stdout
    assert "size\t<integer> -required-" in explained and "enum: red, blue" in explained
    custom, ext, api = _apis(server)
    try:
        crd = ext.read_custom_resource_definition(CRD_NAME)
        assert crd.status.accepted_names.short_names == ["wdg"]
        assert crd.status.stored_versions == ["v1"]
        assert [(c.type, c.status) for c in crd.status.conditions] == [
            ("NamesAccepted", "True"), ("Established", "True")]

        # Create (defaulted, pruned with a warning), list as a Table, watch.
        stream = watch.Watch()
        events = stream.stream(custom.list_namespaced_custom_object, GROUP, "v1", "default",
                               "widgets", timeout_seconds=10)
        created = custom.create_namespaced_custom_object(
            GROUP, "v1", "default", "widgets", _widget("w1", size=3, bogus=True))
        assert created["spec"] == {"size": 3, "color": "red"}
        assert created["metadata"]["generation"] == 1
        older = custom.get_namespaced_custom_object(GROUP, "v1beta1", "default", "widgets", "w1")
        assert (older["apiVersion"], older["spec"]) == (f"{GROUP}/v1beta1", created["spec"])
        first = next(events)
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "w1")
        stream.stop()
        events.close()  # its connection released now, not by the garbage collector
        rows = server.kubectl("get", "wdg").stdout.splitlines()
        assert rows[0].split() == ["NAME", "SIZE", "READY", "AGE"]
        assert rows[1].split()[:2] == ["w1", "3"]
        assert "w1" in server.kubectl("get", "all").stdout

        # Merge patch of the spec bumps the generation; /status does not, and keeps spec.
        patched = custom.patch_namespaced_custom_object(
            GROUP, "v1", "default", "widgets", "w1", {"spec": {"size": 4}})
        assert (patched["spec"]["size"], patched["metadata"]["generation"]) == (4, 2)
        status = custom.patch_namespaced_custom_object_status(
            GROUP, "v1", "default", "widgets", "w1",
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]},
             "spec": {"size": 9}})
        assert (status["spec"]["size"], status["metadata"]["generation"]) == (4, 2)
        assert server.kubectl("get", "wdg", "w1", "--no-headers").stdout.split()[:3] == [
            "w1", "4", "True"]

        # /scale: kubectl scale writes spec.replicas through it.
        assert server.kubectl("scale", "wdg", "w1", "--replicas=3").stdout.strip() == \
            f"widget.{GROUP}/w1 scaled"
        scale = custom.get_namespaced_custom_object_scale(GROUP, "v1", "default", "widgets",
                                                          "w1")
        assert (scale["kind"], scale["spec"]) == ("Scale", {"replicas": 3})

        # Validation: a 422 with upstream's field paths.
        with pytest.raises(ApiException) as bad:
            custom.create_namespaced_custom_object(
                GROUP, "v1", "default", "widgets", _widget("w2", size=11, color="green"))
        assert bad.value.status == 422
        causes = json.loads(bad.value.body)["details"]["causes"]
        assert [(c["field"], c["message"]) for c in causes] == [
            ("spec.size", "Invalid value: 11: spec.size in body should be less than or equal "
                          "to 10"),
            ("spec.color", 'Unsupported value: "green": supported values: "red", "blue"'),
            # the unsupported color keeps the CEL rules from running, as upstream says
            ("<nil>", 'Invalid value: "null": some validation rules were not checked because '
                      "the object was invalid; correct the existing errors to complete "
                      "validation")]
        r = server.kubectl("apply", "-f", "-", check=False, stdin=yaml.safe_dump(
            _widget("w3", size=2, bogus=1)))
        assert 'strict decoding error: unknown field "spec.bogus"' in r.stderr
        # A CEL rule (x-kubernetes-validations) refuses what it does not hold for.
        r = server.kubectl("apply", "-f", "-", check=False, stdin=yaml.safe_dump(
            _widget("w4", size=1, replicas=11)))
        assert ('The Widget "w4" is invalid: spec: Invalid value: replicas may not exceed ten '
                "times size") in r.stderr
        # fieldValidation=Warn prunes and warns; server-side apply records its manager.
        r = server.kubectl("apply", "--validate=warn", "-f", "-", stdin=yaml.safe_dump(
            _widget("w3", size=2, bogus=1)))
        assert 'unknown field "spec.bogus"' in r.stderr
        server.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=crd-test",
                       "-f", "-", stdin=yaml.safe_dump(_widget("w3", size=5)))
        w3 = custom.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w3")
        assert w3["spec"] == {"size": 5, "color": "red"}
        assert "crd-test" in [m["manager"] for m in w3["metadata"]["managedFields"]]
        r = server.kubectl("patch", "wdg", "w1", "-p", '{"spec":{"size":5}}', check=False)
        assert "application/strategic-merge-patch+json is not supported" in r.stderr
        # Client-side apply of an existing object sends a merge patch (the OpenAPI document
        # offers no strategic merge for it).
        applied = _widget("w1", size=4)
        applied["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        assert server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(
            applied)).stdout.strip() == f"widget.{GROUP}/w1 configured"

        # The garbage collector: a ConfigMap owned by a Widget goes with it, and a Widget
        # owned by a ConfigMap with that.
        owner = custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets",
                                                       _widget("owner", size=1))
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map("default", {
            "metadata": {"name": "owned-cm", "ownerReferences": [{
                "apiVersion": f"{GROUP}/v1", "kind": "Widget", "name": "owner",
                "uid": owner["metadata"]["uid"]}]}})
        cm = core.create_namespaced_config_map("default", {"metadata": {"name": "owner-cm"}})
        owned = _widget("owned", size=1)
        owned["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                                 "name": "owner-cm", "uid": cm.metadata.uid}]
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", owned)
        custom.delete_namespaced_custom_object(GROUP, "v1", "default", "widgets", "owner")
        core.delete_namespaced_config_map("owner-cm", "default")
        _wait("the owned ConfigMap and Widget to be collected", lambda: not server.kubectl(
            "get", "configmap/owned-cm", "wdg/owned", "--ignore-not-found", "-o",
            "name").stdout.strip())

        # A CR in a deleted namespace goes with it.
        ns = f"crd-{uuid.uuid4().hex[:8]}"
        server.kubectl("create", "namespace", ns)
        custom.create_namespaced_custom_object(GROUP, "v1", ns, "widgets",
                                               _widget("doomed", size=1))
        server.kubectl("delete", "namespace", ns, "--wait=false")
        _wait("the namespace's widget to go", lambda: not server.kubectl(
            "get", "wdg", "-n", ns, "-o", "name").stdout.strip())
    finally:
        api.close()

    # A restart serves them again, from the store alone.
    assert stop_server(server.process) == 0
    server.process = start_server(server.data_dir)
    assert server.kubectl("get", "wdg", "w1", "-o", "jsonpath={.spec.size}").stdout == "4"

    # Deleting the CRD deletes its objects first: one held by a finalizer holds the CRD
    # (Terminating) until it goes; a new CRD of the same name starts empty.
    held = _widget("held", size=1)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    server.kubectl("create", "-f", "-", stdin=yaml.safe_dump(held))
    server.kubectl("delete", "crd", CRD_NAME, "--wait=false")
    _wait("the held widget to be marked", lambda: server.kubectl(
        "get", "wdg", "held", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout != "")
    terminating = server.get_json("crd", CRD_NAME)
    assert {(c["type"], c["status"], c["reason"]) for c in terminating["status"][
        "conditions"]} >= {("Terminating", "True", "InstanceDeletionInProgress")}
    assert server.kubectl("get", "wdg", "-o", "name").stdout.split() == [f"widget.{GROUP}/held"]
    server.kubectl("patch", "wdg", "held", "--type=merge", "-p",
                   '{"metadata":{"finalizers":null}}')
    server.kubectl("wait", "--for=delete", f"crd/{CRD_NAME}", "--timeout=30s")
    assert "NotFound" in server.kubectl("get", "crd", CRD_NAME, check=False).stderr
    server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(CRD))
    server.kubectl("wait", "--for", "condition=established", f"crd/{CRD_NAME}",
                   "--timeout=20s")
    assert server.kubectl("get", "wdg", "-A", "-o", "name").stdout.strip() == ""
