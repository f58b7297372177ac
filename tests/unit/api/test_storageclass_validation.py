"""StorageClass defaulting and validation (pkg/apis/storage/v1/defaults.go,
pkg/apis/storage/validation's TestValidateStorageClass, TestValidateStorageClassUpdate,
TestValidateAllowedTopologies), the built-in default class, and the DefaultStorageClass
admission (plugin/pkg/admission/storage/storageclass/setdefault, GetDefaultClass) alone and
through the claim and class registries."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.errors import StatusError
from svcnet.api.storageclasses import (
    DEFAULT_STORAGE_CLASS,
    DEFAULT_STORAGE_CLASS_NAME,
    LOCAL_PATH_PROVISIONER,
    admit_claim_default_class,
    default_storage_class,
    set_defaults_storage_class,
    validate_storage_class,
    validate_storage_class_update,
)
from svcnet.registry.generic import Registry
from svcnet.registry.volumes import PersistentVolumeClaimStrategy, StorageClassStrategy
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]

QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                 "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                 "or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def sc(name: str = "foo", **fields: Any) -> Obj:
    """A class as the strategy validates it (defaulted)."""
    return set_defaults_storage_class({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                       "metadata": {"name": name},
                                       "provisioner": "kubernetes.io/foo-provisioner",
                                       **fields})


def term(*exprs: tuple[str, list[str]]) -> Obj:
    return {"matchLabelExpressions": [{"key": k, "values": v} for k, v in exprs]}


CASES: list[tuple[str, Obj, list[str]]] = [
    # (id, object, every error as "path: message")
    ("valid", sc(parameters={"foo": "bar"}, reclaimPolicy="Delete"), []),
    ("retain", sc(reclaimPolicy="Retain", mountOptions=["ro", "noatime", "anything goes"],
                  allowVolumeExpansion=True), []),
    ("empty reclaim policy passes", sc(reclaimPolicy=""), []),
    ("wait for first consumer", sc(volumeBindingMode="WaitForFirstConsumer"), []),
    ("with namespace", sc(metadata={"name": "foo", "namespace": "bar"}),
     ["metadata.namespace: Forbidden: not allowed on this type"]),
    ("missing provisioner", sc(provisioner=""), ["provisioner: Required value"]),
    ("invalid provisioner, shown lower-cased", sc(provisioner="Invalid/Provisioner!"),
     [f'provisioner: Invalid value: "invalid/provisioner!": {QUALIFIED_MSG}']),
    ("upper-case provisioner is fine", sc(provisioner="Example.COM/Fast"), []),
    ("empty parameter key", sc(parameters={"": "value"}),
     ['parameters: Invalid value: "": field can not be empty.']),
    ("too many parameters", sc(parameters={f"k{i}": "v" for i in range(513)}),
     ["parameters: Too long: may not be more than 512 bytes"]),
    ("512 parameters", sc(parameters={f"k{i}": "v" for i in range(512)}), []),
    ("parameters too large", sc(parameters={"big": "x" * (256 * 1024)}),
     ["parameters: Too long: may not be more than 262144 bytes"]),
    ("unsupported reclaim policy", sc(reclaimPolicy="Recycle"),
     ['reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"']),
    ("unsupported binding mode", sc(volumeBindingMode="Later"),
     ['volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", '
      '"WaitForFirstConsumer"']),
    ("empty binding mode", sc(volumeBindingMode=""),
     ['volumeBindingMode: Unsupported value: "": supported values: "Immediate", '
      '"WaitForFirstConsumer"']),
    # TestValidateAllowedTopologies.
    ("valid topology", sc(allowedTopologies=[term((ZONE, ["zone1"]), (HOST, ["node1"])),
                                             term((ZONE, ["zone2"]), (HOST, ["node2"]))]), []),
    ("topology invalid key", sc(allowedTopologies=[term(("/invalidkey", ["zone1"]))]),
     ['allowedTopologies[0].matchLabelExpressions[0].key: Invalid value: "/invalidkey": '
      "prefix part must be non-empty"]),
    ("topology lack of values", sc(allowedTopologies=[term((HOST, []))]),
     ["allowedTopologies[0].matchLabelExpressions[0].values: Required value"]),
    ("duplicate values", sc(allowedTopologies=[term((HOST, ["node1", "node1"]))]),
     ['allowedTopologies[0].matchLabelExpressions[0].values[1]: Duplicate value: "node1"']),
    ("multiple values", sc(allowedTopologies=[term((HOST, ["node1", "node2"]))]), []),
    # Upstream's seeding of the seen terms makes an empty term a duplicate, once per term.
    ("empty matchLabelExpressions", sc(allowedTopologies=[{"matchLabelExpressions": None}]),
     ['allowedTopologies[0].matchLabelExpressions: Duplicate value: ""']),
    ("duplicate keys", sc(allowedTopologies=[term((HOST, ["node1"]), (HOST, ["node2"]))]),
     ['allowedTopologies[0].matchLabelExpressions[1].key: Duplicate value: '
      '"kubernetes.io/hostname"']),
    ("same key across terms", sc(allowedTopologies=[term((HOST, ["node1"])),
                                                    term((HOST, ["node2"]))]), []),
    ("identical terms", sc(allowedTopologies=[term((ZONE, ["zone1"]), (HOST, ["node1"])),
                                              term((ZONE, ["zone1"]), (HOST, ["node1"]))]),
     ['allowedTopologies[1].matchLabelExpressions: Duplicate value: ""']),
    ("one expression the same, one not",
     sc(allowedTopologies=[term((ZONE, ["zone1"]), (HOST, ["node1"])),
                           term((ZONE, ["zone1"]), (HOST, ["node2"]))]), []),
    ("terms alike but for expression order",
     sc(allowedTopologies=[term((HOST, ["node1"]), (ZONE, ["zone1"])),
                           term((ZONE, ["zone1"]), (HOST, ["node1"]))]),
     ['allowedTopologies[1].matchLabelExpressions: Duplicate value: ""']),
    ("terms alike but for value order",
     sc(allowedTopologies=[term((ZONE, ["zone1", "zone2"])), term((ZONE, ["zone2", "zone1"]))]),
     ['allowedTopologies[1].matchLabelExpressions: Duplicate value: ""']),
]


@pytest.mark.parametrize(("obj", "want"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_validate_storage_class(obj: Obj, want: list[str]) -> None:
    assert [str(e) for e in validate_storage_class(obj)] == want


def test_defaults() -> None:
    raw = {"metadata": {"name": "x"}}
    out = set_defaults_storage_class(raw)
    assert (out["reclaimPolicy"], out["volumeBindingMode"], out["provisioner"]) == (
        "Delete", "Immediate", "")
    assert raw == {"metadata": {"name": "x"}}, "a copy"
    kept = set_defaults_storage_class({"reclaimPolicy": "Retain",
                                       "volumeBindingMode": "WaitForFirstConsumer"})
    assert (kept["reclaimPolicy"], kept["volumeBindingMode"]) == ("Retain",
                                                                  "WaitForFirstConsumer")
    # validate_storage_class on an undefaulted object: the mode is required.
    assert [str(e) for e in validate_storage_class({"metadata": {"name": "x"},
                                                    "provisioner": "a/b"})] == [
        "volumeBindingMode: Required value"]
    assert kinds.KINDS[("storage.k8s.io/v1", "StorageClass")].resource == "storageclasses"


def test_the_built_in_class() -> None:
    assert validate_storage_class(DEFAULT_STORAGE_CLASS) == []
    assert set_defaults_storage_class(DEFAULT_STORAGE_CLASS) == DEFAULT_STORAGE_CLASS
    assert DEFAULT_STORAGE_CLASS["metadata"] == {
        "name": DEFAULT_STORAGE_CLASS_NAME,
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}
    assert (DEFAULT_STORAGE_CLASS["provisioner"], DEFAULT_STORAGE_CLASS["volumeBindingMode"],
            DEFAULT_STORAGE_CLASS["reclaimPolicy"]) == (
        LOCAL_PATH_PROVISIONER, "WaitForFirstConsumer", "Delete")
    assert LOCAL_PATH_PROVISIONER == "svcnet.io/local-path"


def _stored(**fields: Any) -> Obj:
    obj = sc(parameters={"kubernetes.io/foo": "bar"}, **fields)
    obj["metadata"].update(resourceVersion="1", uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    return obj


UPDATE_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("labels may change", {"metadata": {"labels": {"a": "b"}}}, []),
    ("allowVolumeExpansion may change", {"allowVolumeExpansion": True}, []),
    ("mountOptions may change", {"mountOptions": ["ro"]}, []),
    ("parameters", {"parameters": {"kubernetes.io/foo": "baz"}},
     ["parameters: Forbidden: updates to parameters are forbidden."]),
    ("parameters removed", {"parameters": None},
     ["parameters: Forbidden: updates to parameters are forbidden."]),
    ("provisioner", {"provisioner": "kubernetes.io/other"},
     ["provisioner: Forbidden: updates to provisioner are forbidden."]),
    ("reclaim policy", {"reclaimPolicy": "Retain"},
     ["reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden."]),
    ("binding mode", {"volumeBindingMode": "WaitForFirstConsumer"},
     ['volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable']),
    ("the create rules run too", {"volumeBindingMode": "Later"},
     ['volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", '
      '"WaitForFirstConsumer"',
      'volumeBindingMode: Invalid value: "Later": field is immutable']),
]


@pytest.mark.parametrize(("change", "want"),
                         [pytest.param(c[1], c[2], id=c[0]) for c in UPDATE_CASES])
def test_validate_storage_class_update(change: dict[str, Any], want: list[str]) -> None:
    old = _stored()
    new = copy.deepcopy(old)
    for key, value in change.items():
        if key == "metadata":
            new["metadata"].update(value)
        elif value is None:
            new.pop(key)
        else:
            new[key] = value
    new["metadata"]["resourceVersion"] = "2"
    assert [str(e) for e in validate_storage_class_update(new, old)] == want


# -- the default class and the admission ----------------------------------------------------


def _class(name: str, created: str, *, default: bool = True, beta: bool = False) -> Obj:
    key = ("storageclass.beta.kubernetes.io/is-default-class" if beta else
           "storageclass.kubernetes.io/is-default-class")
    return sc(name, metadata={"name": name, "creationTimestamp": created,
                              "annotations": {key: "true" if default else "false"}})


def claim(**spec: Any) -> Obj:
    return {"metadata": {"name": "data", "namespace": "app"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}, **spec}}


def test_the_default_class_is_the_newest_then_the_first_by_name() -> None:
    old = _class("old", "2024-01-01T00:00:00Z")
    new = _class("new", "2024-06-01T00:00:00Z")
    same_b = _class("b", "2024-06-01T00:00:00Z")
    not_default = _class("z", "2025-01-01T00:00:00Z", default=False)
    beta = _class("beta", "2023-01-01T00:00:00Z", beta=True)
    assert default_storage_class([]) is None
    assert default_storage_class([not_default]) is None
    assert default_storage_class([old, not_default])["metadata"]["name"] == "old"  # type: ignore[index]
    assert default_storage_class([old, new, not_default])["metadata"]["name"] == "new"  # type: ignore[index]
    assert default_storage_class([same_b, new, old])["metadata"]["name"] == "b"  # type: ignore[index]
    assert default_storage_class([beta])["metadata"]["name"] == "beta"  # type: ignore[index]
    # Only "true" exactly.
    other = _class("x", "2024-01-01T00:00:00Z")
    other["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "True"}
    assert default_storage_class([other]) is None


@pytest.mark.parametrize(("given", "want"), [
    (claim(), "standard"),
    (claim(storageClassName=""), ""),  # asks for no class: kept
    (claim(storageClassName="fast"), "fast"),
    ({**claim(), "metadata": {"name": "data", "annotations": {
        "volume.beta.kubernetes.io/storage-class": "slow"}}}, None),
])
def test_admission(given: Obj, want: str | None) -> None:
    classes = [_class("standard", "2024-01-01T00:00:00Z"),
               _class("fast", "2024-01-01T00:00:00Z", default=False)]
    out = admit_claim_default_class(given, classes)
    assert out["spec"].get("storageClassName") == want
    assert "storageClassName" not in claim()["spec"], "a copy"


def test_admission_without_a_default_class_leaves_the_claim() -> None:
    assert admit_claim_default_class(claim(), [_class("a", "2024-01-01T00:00:00Z",
                                                      default=False)]) == claim()


# -- through the registries ------------------------------------------------------------------


@pytest.fixture
def classes() -> Registry:
    return Registry(MemoryStore(), StorageClassStrategy(), rng=random.Random(7))


@pytest.fixture
def claims(classes: Registry) -> Registry:
    calls: list[int] = []

    async def every_class() -> list[Obj]:
        calls.append(1)
        return (await classes.list("")).items

    registry = Registry(MemoryStore(), PersistentVolumeClaimStrategy(every_class),
                        rng=random.Random(7))
    registry.calls = calls  # type: ignore[attr-defined]
    return registry


async def test_class_writes_through_the_registry(classes: Registry) -> None:
    made = await classes.create("", {"metadata": {"name": "fast"}, "provisioner": "example.com/x"})
    assert (made["reclaimPolicy"], made["volumeBindingMode"]) == ("Delete", "Immediate")
    assert "generation" not in made["metadata"]
    assert "namespace" not in made["metadata"]
    with pytest.raises(StatusError) as err:
        await classes.create("", {"metadata": {"name": "bad"}, "provisioner": "x",
                                  "reclaimPolicy": "Recycle"})
    assert err.value.code == 422
    assert err.value.message == (
        'StorageClass.storage.k8s.io "bad" is invalid: reclaimPolicy: Unsupported value: '
        '"Recycle": supported values: "Delete", "Retain"')
    changed = {**made, "provisioner": "example.com/y"}
    with pytest.raises(StatusError) as err:
        await classes.update("", "fast", changed)
    assert err.value.message == ('StorageClass.storage.k8s.io "fast" is invalid: provisioner: '
                                 "Forbidden: updates to provisioner are forbidden.")
    relabelled = {**made, "metadata": {**made["metadata"], "labels": {"a": "b"}}}
    assert (await classes.update("", "fast", relabelled))["metadata"]["labels"] == {"a": "b"}


async def test_claims_get_the_default_class_through_the_registry(classes: Registry,
                                                                 claims: Registry) -> None:
    plain = await claims.create("app", claim())
    assert "storageClassName" not in plain["spec"], "no default class yet"
    await classes.create("", copy.deepcopy(DEFAULT_STORAGE_CLASS))
    second = claim()
    second["metadata"]["name"] = "second"
    made = await claims.create("app", second)
    assert made["spec"]["storageClassName"] == "standard"
    assert made["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    calls = len(claims.calls)  # type: ignore[attr-defined]
    empty = claim(storageClassName="")
    empty["metadata"]["name"] = "empty"
    assert (await claims.create("app", empty))["spec"]["storageClassName"] == ""
    assert len(claims.calls) == calls, "a claim with a class lists no classes"  # type: ignore[attr-defined]
    # Create only: an update that leaves the class out does not get it (it is immutable).
    assert "storageClassName" not in (await claims.get("app", "data"))["spec"]
