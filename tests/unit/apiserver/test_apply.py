"""Server-side apply and managedFields bookkeeping.

Expected ``fieldsV1`` values are the ones a real cluster shows for the same writes
(``kubectl create`` and ``kubectl apply --server-side`` of a plain Service); conflict
messages follow ``internal/conflict.go``. Scenarios run a small "cluster": each write's result
becomes the next write's live object, with the fields the registry would add (uid,
resourceVersion, defaults) filled in by :func:`stored`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.apply import (
    LAST_APPLIED_ANNOTATION,
    FieldSet,
    PathElement,
    fields_of,
    server_side_apply,
    update_managed_fields,
)
from svcnet.apiserver.apply.values import _value_eq

Obj = dict[str, Any]

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T11:00:00Z"
T2 = "2024-05-01T12:00:00Z"


def svc_manifest(**spec: Any) -> Obj:
    base: Obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "backend", "namespace": "default", "labels": {"app": "backend"}},
        "spec": {"selector": {"app": "backend"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    base["spec"].update(spec)
    return base


def stored(obj: Obj) -> Obj:
    """What the registry would persist: system fields and Service defaults."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    meta.setdefault("uid", "0b1c")
    meta.setdefault("resourceVersion", "10")
    meta.setdefault("creationTimestamp", T0)
    spec = out.setdefault("spec", {})
    for port in spec.get("ports", []):
        port.setdefault("protocol", "TCP")
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("clusterIP", "10.96.0.11")
    out.setdefault("status", {"loadBalancer": {}})
    return out


def managers(obj: Obj) -> dict[str, Obj]:
    """manager/operation → fieldsV1, for compact assertions."""
    return {f"{e['manager']}/{e['operation']}": e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


def entry(obj: Obj, manager: str) -> Obj:
    return next(e for e in obj["metadata"]["managedFields"] if e["manager"] == manager)


PORT80 = 'k:{"port":80,"protocol":"TCP"}'
PORT9100 = 'k:{"port":9100,"protocol":"TCP"}'


def apply(live: Obj | None, cfg: Obj, manager: str = "kubectl", force: bool = False,
          now: str = T1) -> Obj:
    return server_side_apply(live, cfg, manager, force, "v1", "Service", now)


# ============================================================================================
# fieldsV1 encoding
# ============================================================================================


def test_fields_v1_of_kubectl_create() -> None:
    """``kubectl create -f svc.yaml`` (an Update of the defaulted object)."""
    created = stored(svc_manifest())
    created["spec"].update(sessionAffinity="None", internalTrafficPolicy="Cluster")
    del created["spec"]["clusterIP"]  # allocated after the field manager ran
    out = update_managed_fields(None, created, "kubectl-create", "Update", "v1", T0)
    assert out["metadata"]["managedFields"] == [{
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:internalTrafficPolicy": {},
                "f:ports": {".": {}, PORT80: {
                    ".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                "f:selector": {},
                "f:sessionAffinity": {},
                "f:type": {},
            },
        },
    }]


def test_fields_v1_of_server_side_apply() -> None:
    """``kubectl apply --server-side``: the configuration's own fields, ports keyed with TCP."""
    out = apply(None, svc_manifest())
    assert json.dumps(out["metadata"]["managedFields"][0]["fieldsV1"], separators=(",", ":")) \
        == ('{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:ports":{"k:{\\"port\\":80,'
            '\\"protocol\\":\\"TCP\\"}":{".":{},"f:name":{},"f:port":{},"f:targetPort":{}}},'
            '"f:selector":{}}}')


@pytest.mark.parametrize(("obj", "api_version", "kind", "paths"), [
    pytest.param({"metadata": {"finalizers": ["a", "b"]}}, "v1", "Pod",
                 ['.metadata.finalizers[="a"]', '.metadata.finalizers[="b"]'], id="set"),
    pytest.param({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}, "v1", "Endpoints",
                 [".subsets"], id="atomic list"),
    pytest.param({"spec": {"selector": {"matchLabels": {"a": "b"}}}}, "apps/v1", "Deployment",
                 [".spec.selector"], id="atomic struct"),
    pytest.param({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}},
                 "v1", "Pod",
                 ['.spec.containers[name="c"]', '.spec.containers[name="c"].name',
                  '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]',
                  '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]'
                  '.containerPort'], id="nested list maps with key default"),
    pytest.param({"status": {"loadBalancer": {}}}, "v1", "Service", [".status.loadBalancer"],
                 id="empty struct is a leaf"),
    pytest.param({"spec": {"ports": []}}, "v1", "Service", [], id="empty list map owns nothing"),
    pytest.param({"metadata": {"labels": {"a": None}}}, "v1", "Service",
                 [".metadata.labels.a"], id="null is owned"),
])
def test_fields_of(obj: Obj, api_version: str, kind: str, paths: list[str]) -> None:
    assert sorted(map(_path, fields_of(obj, api_version, kind))) == sorted(paths)


def _path(p: tuple[PathElement, ...]) -> str:
    return "".join(str(pe) for pe in p)


def test_field_set_round_trips_fields_v1() -> None:
    fields_v1 = {
        "f:metadata": {"f:finalizers": {".": {}, 'v:"a"': {}}},
        "f:spec": {"f:ports": {".": {}, PORT80: {".": {}, "f:port": {}}},
                   "f:list": {"i:0": {}}},
    }
    fs = FieldSet.from_fields_v1(fields_v1)
    assert fs.to_fields_v1() == fields_v1
    assert [_path(p) for p in fs] == [
        ".metadata.finalizers", '.metadata.finalizers[="a"]', ".spec.ports",
        '.spec.list[0]', '.spec.ports[port=80,protocol="TCP"]',
        '.spec.ports[port=80,protocol="TCP"].port']
    assert FieldSet.from_fields_v1({"f:a": {"x:unknown": {}}}).to_fields_v1() == {"f:a": {}}


def test_field_set_algebra() -> None:
    a = fields_of({"spec": {"x": 1, "y": {"z": 2}}}, "v1", "Service")
    b = fields_of({"spec": {"y": {"z": 3}}}, "v1", "Service")
    assert [_path(p) for p in a & b] == [".spec.y.z"]
    assert [_path(p) for p in a - b] == [".spec.x"]
    spec = FieldSet([(PathElement.field("spec"),)])
    assert not a.recursive_difference(spec)
    assert ".spec.y" in {_path(p) for p in a.ensure_named_fields_are_members()}


# ============================================================================================
# Server-side apply
# ============================================================================================


def test_create_via_apply() -> None:
    cfg = svc_manifest()
    snapshot = copy.deepcopy(cfg)
    out = apply(None, cfg)
    assert cfg == snapshot
    assert {k: v for k, v in out.items() if k != "metadata"} == {
        k: v for k, v in cfg.items() if k != "metadata"}
    assert out["metadata"]["labels"] == {"app": "backend"}
    (e,) = out["metadata"]["managedFields"]
    assert {k: e[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType")} == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T1,
        "fieldsType": "FieldsV1"}


def test_reapply_unchanged_keeps_object_and_time() -> None:
    live = stored(apply(None, svc_manifest(), now=T0))
    again = apply(live, svc_manifest(), now=T2)
    assert again == live
    assert entry(again, "kubectl")["time"] == T0


def test_apply_removing_fields_prunes_them() -> None:
    live = stored(apply(None, svc_manifest(
        ports=[{"name": "http", "port": 80, "targetPort": 8080},
               {"name": "metrics", "port": 9100}])))
    cfg = svc_manifest()
    del cfg["metadata"]["labels"]
    cfg["spec"]["ports"] = [{"name": "http", "port": 80}]
    out = apply(live, cfg, now=T2)
    assert "labels" not in out["metadata"]
    # targetPort and the metrics port were applied before and are not any more: gone.
    # protocol was defaulted (nobody owns it) and stays.
    assert out["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert out["spec"]["clusterIP"] == "10.96.0.11"
    assert managers(out) == {"kubectl/Apply": {"f:spec": {
        "f:ports": {PORT80: {".": {}, "f:name": {}, "f:port": {}}}, "f:selector": {}}}}
    assert entry(out, "kubectl")["time"] == T2


def test_apply_keeps_fields_another_manager_also_owns() -> None:
    live = stored(apply(None, svc_manifest(), "a"))
    shared = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend",
              "labels": {"app": "backend"}}}
    live = stored(apply(live, shared, "b"))
    cfg = svc_manifest()
    del cfg["metadata"]["labels"]
    out = apply(live, cfg, "a")
    assert out["metadata"]["labels"] == {"app": "backend"}  # b still applies it
    assert "f:metadata" not in managers(out)["a/Apply"]


def test_conflict_between_appliers_then_force() -> None:
    live = stored(apply(None, svc_manifest(), "a"))
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
             "spec": {"selector": {"app": "other"},
                      "ports": [{"port": 80, "targetPort": 9090}]}}
    with pytest.raises(StatusError) as ei:
        apply(live, other, "b")
    err = ei.value
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == ('Apply failed with 2 conflicts: conflicts with "a":\n'
                           "- .spec.selector\n"
                           '- .spec.ports[port=80,protocol="TCP"].targetPort')
    assert err.details == {"causes": [
        {"reason": "FieldManagerConflict", "message": 'conflict with "a"',
         "field": ".spec.selector"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "a"',
         "field": '.spec.ports[port=80,protocol="TCP"].targetPort'}]}
    assert err.to_status()["details"]["causes"][0]["reason"] == "FieldManagerConflict"

    forced = apply(live, other, "b", force=True)
    assert forced["spec"]["selector"] == {"app": "other"}
    assert forced["spec"]["ports"][0]["targetPort"] == 9090
    m = managers(forced)
    assert m["a/Apply"] == {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {
        "f:ports": {PORT80: {".": {}, "f:name": {}, "f:port": {}}}}}
    assert m["b/Apply"] == {"f:spec": {
        "f:ports": {PORT80: {".": {}, "f:port": {}, "f:targetPort": {}}}, "f:selector": {}}}


def test_same_value_is_shared_not_a_conflict() -> None:
    live = stored(apply(None, svc_manifest(), "a"))
    out = apply(live, svc_manifest(), "b")
    assert set(managers(out)) == {"a/Apply", "b/Apply"}


def test_conflict_with_client_side_apply_manager() -> None:
    created = stored(svc_manifest())
    live = update_managed_fields(None, created, "kubectl-client-side-apply", "Update", "v1", T0)
    cfg = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
           "spec": {"selector": {"app": "backend2"}}}
    with pytest.raises(StatusError) as ei:
        apply(live, cfg, "my-controller")
    assert ei.value.message == ('Apply failed with 1 conflict: conflict with '
                                '"kubectl-client-side-apply" using v1: .spec.selector')
    assert ei.value.details["causes"] == [{
        "reason": "FieldManagerConflict",
        "message": 'conflict with "kubectl-client-side-apply" using v1',
        "field": ".spec.selector"}]


def test_kubectl_migrates_from_client_side_apply() -> None:
    """The ``kubectl`` manager may take over values still equal to last-applied."""
    manifest = svc_manifest()
    last = json.dumps(manifest) + "\n"
    created = stored(svc_manifest())
    created["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: last}
    live = stored(update_managed_fields(None, created, "kubectl-client-side-apply", "Update",
                                        "v1", T0))
    cfg = svc_manifest(selector={"app": "backend2"})
    out = apply(live, cfg, "kubectl", now=T2)
    assert out["spec"]["selector"] == {"app": "backend2"}
    assert "f:selector" not in managers(out)["kubectl-client-side-apply/Update"]["f:spec"]
    # The annotation now mirrors the applied configuration.
    assert json.loads(out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]) == cfg
    assert out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].endswith("\n")
    # Any other manager name gets the conflict.
    with pytest.raises(StatusError):
        apply(live, cfg, "not-kubectl")


def test_kubectl_migration_stops_at_fields_changed_since_last_apply() -> None:
    created = stored(svc_manifest())
    created["metadata"]["annotations"] = {
        LAST_APPLIED_ANNOTATION: json.dumps(svc_manifest(selector={"app": "older"}))}
    live = stored(update_managed_fields(None, created, "kubectl-client-side-apply", "Update",
                                        "v1", T0))
    with pytest.raises(StatusError) as ei:
        apply(live, svc_manifest(selector={"app": "backend2"}), "kubectl")
    assert [c["field"] for c in ei.value.details["causes"]] == [".spec.selector"]


def test_update_takes_ownership_from_applier() -> None:
    live = stored(apply(None, svc_manifest(), "a", now=T0))
    edited = copy.deepcopy(live)
    edited["spec"]["ports"][0]["targetPort"] = 7070
    after_edit = stored(update_managed_fields(live, edited, "kubectl-edit", "Update", "v1", T1))
    m = managers(after_edit)
    assert m["kubectl-edit/Update"] == {"f:spec": {"f:ports": {PORT80: {"f:targetPort": {}}}}}
    assert "f:targetPort" not in m["a/Apply"]["f:spec"]["f:ports"][PORT80]
    assert entry(after_edit, "a")["time"] == T0
    assert entry(after_edit, "kubectl-edit")["time"] == T1

    # Re-applying the old value now conflicts with the editor...
    with pytest.raises(StatusError) as ei:
        apply(after_edit, svc_manifest(), "a", now=T2)
    assert ei.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-edit" '
                                'using v1: .spec.ports[port=80,protocol="TCP"].targetPort')
    # ...and leaving it out no longer removes it, because "a" does not own it any more.
    cfg = svc_manifest()
    cfg["spec"]["ports"] = [{"name": "http", "port": 80}]
    assert apply(after_edit, cfg, "a")["spec"]["ports"][0]["targetPort"] == 7070


def test_update_merges_entries_of_the_same_manager_and_drops_removed_fields() -> None:
    live = stored(update_managed_fields(None, stored(svc_manifest()), "edit", "Update", "v1",
                                        T0))
    step = copy.deepcopy(live)
    step["metadata"]["labels"]["tier"] = "web"
    del step["spec"]["selector"]
    out = update_managed_fields(live, step, "edit", "Update", "v1", T1)
    (e,) = out["metadata"]["managedFields"]
    assert e["time"] == T1
    fields = e["fieldsV1"]
    assert fields["f:metadata"]["f:labels"] == {".": {}, "f:app": {}, "f:tier": {}}
    assert "f:selector" not in fields["f:spec"]

    # An update that changes nothing keeps the entry's time.
    same = update_managed_fields(out, copy.deepcopy(out), "edit", "Update", "v1", T2)
    assert same["metadata"]["managedFields"] == out["metadata"]["managedFields"]


def test_update_of_untracked_object_stays_untracked() -> None:
    live = stored(svc_manifest())  # has a uid, no managedFields
    new = copy.deepcopy(live)
    new["spec"]["selector"] = {"app": "x"}
    out = update_managed_fields(live, new, "kubectl-edit", "Update", "v1", T1)
    assert "managedFields" not in out["metadata"]


def test_update_can_reset_managed_fields() -> None:
    live = stored(apply(None, svc_manifest()))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = []
    out = update_managed_fields(live, new, "kubectl-edit", "Update", "v1", T1)
    assert "managedFields" not in out["metadata"]


def test_update_keeps_user_supplied_managed_fields() -> None:
    live = stored(apply(None, svc_manifest()))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"][0]["manager"] = "renamed"
    out = update_managed_fields(live, new, "kubectl-replace", "Update", "v1", T1)
    assert set(managers(out)) == {"renamed/Apply"}


def test_malformed_managed_fields_keep_the_old_ones() -> None:
    live = stored(apply(None, svc_manifest()))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = [{"manager": "x", "operation": "Bogus",
                                         "apiVersion": "v1", "fieldsType": "FieldsV1"}]
    new["spec"]["selector"] = {"app": "y"}
    out = update_managed_fields(live, new, "kubectl-edit", "Update", "v1", T1)
    # Decoding the request's entries failed: ownership is computed from the live entries.
    assert set(managers(out)) == {"kubectl/Apply", "kubectl-edit/Update"}


def test_status_subresource_update() -> None:
    live = stored(apply(None, svc_manifest()))
    new = copy.deepcopy(live)
    new["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    new["spec"]["selector"] = {"app": "ignored"}  # reset by the status strategy
    out = update_managed_fields(live, new, "lb-controller", "Update", "v1", T1,
                                subresource="status")
    e = entry(out, "lb-controller")
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}
    assert list(e) == ["manager", "operation", "apiVersion", "time", "fieldsType",
                       "fieldsV1", "subresource"]


def test_main_resource_never_owns_status() -> None:
    cfg = svc_manifest()
    cfg["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    out = apply(None, cfg)
    assert "f:status" not in managers(out)["kubectl/Apply"]


def test_subresource_conflicts_name_the_subresource() -> None:
    live = stored(apply(None, svc_manifest()))
    new = copy.deepcopy(live)
    new["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    live = stored(update_managed_fields(live, new, "ctl", "Update", "v1", T1,
                                        subresource="status"))
    cfg = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
           "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    with pytest.raises(StatusError) as ei:
        server_side_apply(live, cfg, "other", False, "v1", "Service", T2, subresource="status")
    assert ei.value.message == (
        'Apply failed with 1 conflict: conflict with "ctl" with subresource "status" using v1: '
        '.status.conditions[type="Ready"].status')


def test_before_first_apply_owns_untracked_fields() -> None:
    live = stored(svc_manifest())  # created without managedFields
    with pytest.raises(StatusError) as ei:
        apply(live, svc_manifest(selector={"app": "x"}), "a")
    assert ei.value.message == ('Apply failed with 1 conflict: conflict with '
                                '"before-first-apply" using v1: .spec.selector')
    out = apply(live, svc_manifest(), "a")
    assert set(managers(out)) == {"a/Apply", "before-first-apply/Update"}


@pytest.mark.parametrize(("cfg", "code", "message"), [
    pytest.param({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "backend"}}, 400,
                 "invalid object type: /v1, Kind=Pod", id="wrong kind"),
    pytest.param({"apiVersion": "apps/v1", "kind": "Service"}, 400,
                 "invalid object type: apps/v1, Kind=Service", id="wrong version"),
    pytest.param({"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": "backend", "managedFields": []}}, 400,
                 "metadata.managedFields must be nil", id="managedFields in config"),
    pytest.param({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
                  "spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}}, 500,
                 "failed to create typed patch object (/backend; /v1, Kind=Service): "
                 '.spec.ports: duplicate entries for key [port=80,protocol="TCP"]',
                 id="duplicate list-map keys"),
])
def test_apply_errors(cfg: Obj, code: int, message: str) -> None:
    with pytest.raises(StatusError) as ei:
        apply(None, cfg)
    assert (ei.value.code, ei.value.message) == (code, message)


def test_apply_list_map_key_defaults() -> None:
    # ServicePort.protocol has +default="TCP": an item without port still has a key.
    out = apply(None, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"},
                       "spec": {"ports": [{"name": "http"}]}})
    assert managers(out)["kubectl/Apply"] == {"f:spec": {"f:ports": {
        'k:{"protocol":"TCP"}': {".": {}, "f:name": {}}}}}


def test_apply_item_without_any_key() -> None:
    cfg = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"image": "x"}]}}
    with pytest.raises(StatusError) as ei:
        server_side_apply(None, cfg, "a", False, "v1", "Pod", T0)
    assert (ei.value.code, ei.value.reason) == (500, "")
    assert ei.value.message == (
        "failed to create typed patch object (/p; /v1, Kind=Pod): .spec.containers: element 0: "
        'associative list with keys has an element that omits all key fields ["name"] (and '
        "doesn't have default values for any key fields)")


def test_list_map_merge_keeps_live_order() -> None:
    live = stored(apply(None, svc_manifest(ports=[{"port": 1}, {"port": 2}, {"port": 3}]), "a"))
    out = apply(live, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
                       "spec": {"ports": [{"port": 3}, {"port": 4}]}}, "b")
    assert [p["port"] for p in out["spec"]["ports"]] == [1, 2, 3, 4]
    reordered = apply(live, {"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "backend"},
                             "spec": {"ports": [{"port": 3}, {"port": 1}]}}, "c")
    assert [p["port"] for p in reordered["spec"]["ports"]] == [2, 3, 1]


def test_pod_containers_owned_per_item() -> None:
    def pod(*containers: str) -> Obj:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": c, "image": f"{c}:1"} for c in containers]}}

    live = server_side_apply(None, pod("app"), "a", False, "v1", "Pod", T0)
    live = server_side_apply(live, pod("sidecar"), "b", False, "v1", "Pod", T1)
    assert [c["name"] for c in live["spec"]["containers"]] == ["app", "sidecar"]
    gone = server_side_apply(live, pod(), "b", False, "v1", "Pod", T2)
    assert [c["name"] for c in gone["spec"]["containers"]] == ["app"]
    assert [e["manager"] for e in gone["metadata"]["managedFields"]] == ["a"]


def test_update_managers_are_capped_at_ten() -> None:
    obj = stored(svc_manifest())
    obj = update_managed_fields(None, obj, "m0", "Update", "v1", "2024-05-01T00:00:00Z")
    for i in range(1, 12):
        new = copy.deepcopy(obj)
        new["metadata"]["labels"][f"l{i}"] = "x"
        obj = update_managed_fields(obj, new, f"m{i}", "Update", "v1",
                                    f"2024-05-01T00:{i:02d}:00Z")
    names = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(names) == 10
    assert "ancient-changes" in names
    assert "m0" not in names and "m1" not in names and "m2" not in names
    ancient = entry(obj, "ancient-changes")["fieldsV1"]
    assert {"f:l1", "f:l2"} <= set(ancient["f:metadata"]["f:labels"])


def test_inputs_are_never_mutated() -> None:
    live = stored(apply(None, svc_manifest(), "a"))
    cfg = svc_manifest(selector={"app": "z"})
    snapshot = copy.deepcopy((live, cfg))
    apply(live, cfg, "b", force=True)
    new = copy.deepcopy(live)
    new["spec"]["selector"] = {"app": "q"}
    snap_new = copy.deepcopy(new)
    update_managed_fields(live, new, "e", "Update", "v1", T2)
    assert (live, cfg) == snapshot
    assert new == snap_new


def test_update_rejects_apply_operation() -> None:
    with pytest.raises(ValueError, match="server_side_apply"):
        update_managed_fields(None, svc_manifest(), "x", "Apply", "v1", T0)


def test_fields_v1_codec_hands_out_private_objects() -> None:
    """Parsed and encoded fieldsV1 are kept between writes: what a caller gets must still be
    its own (editing it changes nothing for the next caller)."""
    fields_v1 = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                 "f:spec": {"f:ports": {".": {}, PORT80: {".": {}, "f:port": {}}}}}
    fs = FieldSet.from_fields_v1(copy.deepcopy(fields_v1))
    again = FieldSet.from_fields_v1(copy.deepcopy(fields_v1))
    assert again == fs
    first = fs.to_fields_v1()
    first["f:spec"]["f:ports"].clear()
    first["f:extra"] = {}
    assert fs.to_fields_v1() == fields_v1
    assert again.to_fields_v1() == fields_v1
    assert json.dumps(again.to_fields_v1()) == json.dumps(fields_v1)  # key order kept too
    with pytest.raises(ValueError):
        FieldSet.from_fields_v1(["not", "an", "object"])


def test_value_equality_is_smd_equality_with_or_without_the_fast_path() -> None:
    assert _value_eq({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]})
    assert not _value_eq({"a": True}, {"a": 1})  # Python's == says equal; smd does not
    assert not _value_eq([False], [0])
    assert _value_eq({"a": 1}, {"a": 1.0})  # numbers compare numerically
    assert _value_eq({"x": 1, "y": 2}, {"y": 2, "x": 1})  # key order does not matter
    nan = float("nan")
    assert not _value_eq([nan], [nan])


def test_update_records_a_bool_replacing_a_number_as_a_change() -> None:
    live = update_managed_fields(None, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "c"}, "data": {"k": 1}},
                                 "first", "Update", "v1", T0)
    new = copy.deepcopy(live)
    new["data"]["k"] = True
    out = update_managed_fields(live, new, "second", "Update", "v1", T1)
    owners = {e["manager"]: e["fieldsV1"] for e in out["metadata"]["managedFields"]}
    assert owners == {"first": {"f:data": {}}, "second": {"f:data": {"f:k": {}}}}
