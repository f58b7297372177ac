"""PersistentVolume and PersistentVolumeClaim defaulting and validation
(pkg/apis/core/v1/defaults.go, pkg/apis/core/validation: the cases of
TestValidatePersistentVolumes / TestValidatePersistentVolumeClaim and their updates)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.errors import StatusError
from svcnet.api.volumes import (
    add_protection_finalizer,
    set_defaults_persistent_volume,
    set_defaults_persistent_volume_claim,
    validate_persistent_volume,
    validate_persistent_volume_claim,
    validate_persistent_volume_claim_update,
    validate_persistent_volume_update,
)

Obj = dict[str, Any]
MODES = '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'
AFFINITY = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}}


def pv(**spec: Any) -> Obj:
    base: Obj = {"capacity": {"storage": "10G"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/foo", "type": "DirectoryOrCreate"},
                 "persistentVolumeReclaimPolicy": "Retain"}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "foo"},
            "spec": {k: v for k, v in base.items() if v is not None}}


def errors(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


PV_CASES: list[tuple[str, Obj, list[str]]] = [
    ("good volume", pv(), []),
    ("good nfs", pv(hostPath=None, nfs={"server": "n", "path": "/exports"}), []),
    ("good csi", pv(hostPath=None, csi={"driver": "ebs.csi.aws.com", "volumeHandle": "v"}),
     []),
    ("good local", pv(hostPath=None, local={"path": "/mnt/d"}, nodeAffinity=AFFINITY), []),
    ("invalid accessMode", pv(accessModes=["fakemode"]),
     [f'spec.accessModes: Unsupported value: "fakemode": supported values: {MODES}']),
    ("no accessModes", pv(accessModes=None), ["spec.accessModes: Required value"]),
    ("ReadWriteOncePod with others", pv(accessModes=["ReadWriteOncePod", "ReadWriteMany"]),
     ["spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"]),
    ("invalid reclaim policy", pv(persistentVolumeReclaimPolicy="fakeReclaimPolicy"),
     ['spec.persistentVolumeReclaimPolicy: Unsupported value: "fakeReclaimPolicy": supported '
      'values: "Delete", "Recycle", "Retain"']),
    ("missing capacity", pv(capacity=None),
     ["spec.capacity: Required value",
      'spec.capacity: Unsupported value: core.ResourceList(nil): supported values: '
      '"storage"']),
    ("zero capacity", pv(capacity={"storage": "0"}),
     ['spec.capacity[storage]: Invalid value: "0": must be greater than zero']),
    ("missing volume source", pv(hostPath=None),
     ["spec: Required value: must specify a volume type"]),
    ("two volume sources", pv(nfs={"server": "n", "path": "/e"}),
     ["spec.nfs: Forbidden: may not specify more than 1 volume type"]),
    ("bad name", {**pv(), "metadata": {"name": "123*Bad(Name"}},
     ['metadata.name: Invalid value: "123*Bad(Name": a lowercase RFC 1123 subdomain must '
      "consist of lower case alphanumeric characters, '-' or '.', and must start and end with "
      "an alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
    ("host mount of / with recycle", pv(hostPath={"path": "/"},
                                        persistentVolumeReclaimPolicy="Recycle"),
     ["spec.persistentVolumeReclaimPolicy: Forbidden: may not be 'recycle' for a hostPath "
      "mount of '/'"]),
    ("hostPath with backsteps", pv(hostPath={"path": "/foo/../bar"}),
     ["spec.hostPath.path: Invalid value: \"/foo/../bar\": must not contain '..'"]),
    ("hostPath bad type", pv(hostPath={"path": "/foo", "type": "Weird"}),
     ['spec.hostPath.type: Unsupported value: "Weird": supported values: "", "BlockDevice", '
      '"CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"']),
    ("local without node affinity", pv(hostPath=None, local={"path": "/mnt/d"}),
     ["spec.nodeAffinity: Required value: Local volume requires node affinity"]),
    ("node affinity without required", pv(nodeAffinity={}),
     ["spec.nodeAffinity.required: Required value: must specify required node constraints"]),
    ("node affinity without terms", pv(nodeAffinity={"required": {"nodeSelectorTerms": []}}),
     ["spec.nodeAffinity.required.nodeSelectorTerms: Required value: must have at least one "
      "node selector term"]),
    ("node affinity In without values", pv(nodeAffinity={"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "k", "operator": "In"}]}]}}),
     ["spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values: Required "
      "value: must be specified when `operator` is 'In' or 'NotIn'"]),
    ("nfs relative path", pv(hostPath=None, nfs={"server": "n", "path": "e"}),
     ['spec.nfs.path: Invalid value: "e": must be an absolute path']),
    ("csi without handle", pv(hostPath=None, csi={"driver": "d.example.com"}),
     ["spec.csi.volumeHandle: Required value"]),
    ("invalid volume mode", pv(volumeMode="fakeVolumeMode"),
     ['spec.volumeMode: Unsupported value: "fakeVolumeMode": supported values: "Block", '
      '"Filesystem"']),
]


@pytest.mark.parametrize(("obj", "want"), [(c[1], c[2]) for c in PV_CASES],
                         ids=[c[0] for c in PV_CASES])
def test_validate_persistent_volume(obj: Obj, want: list[str]) -> None:
    assert errors(validate_persistent_volume(obj)) == want


def test_persistent_volume_defaults() -> None:
    got = set_defaults_persistent_volume({"spec": {"hostPath": {"path": "/x"}}})
    assert got["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert got["spec"]["volumeMode"] == "Filesystem"
    assert got["spec"]["hostPath"]["type"] == ""
    assert got["status"] == {"phase": "Pending"}
    kept = set_defaults_persistent_volume(pv(persistentVolumeReclaimPolicy="Delete",
                                             volumeMode="Block"))
    assert kept["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert kept["spec"]["volumeMode"] == "Block"


def test_persistent_volume_source_and_mode_are_immutable() -> None:
    old = set_defaults_persistent_volume(pv())
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["spec"]["capacity"] = {"storage": "20G"}
    new["spec"]["claimRef"] = {"namespace": "ns", "name": "c"}
    assert validate_persistent_volume_update(new, old) == []
    new["spec"]["hostPath"]["path"] = "/bar"
    new["spec"]["volumeMode"] = "Block"
    got = errors(validate_persistent_volume_update(new, old))
    assert got[0].startswith("spec.persistentvolumesource: Forbidden: "
                             "spec.persistentvolumesource is immutable after creation\n")
    assert got[1] == 'volumeMode: Invalid value: "Block": field is immutable'


def pvc(**spec: Any) -> Obj:
    base: Obj = {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "10G"}}}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "foo", "namespace": "ns"},
            "spec": {k: v for k, v in base.items() if v is not None}}


PVC_CASES: list[tuple[str, Obj, list[str]]] = [
    ("good claim", pvc(), []),
    ("good claim with class and selector", pvc(storageClassName="fast", selector={
        "matchLabels": {"tier": "gold"}}), []),
    ("no access modes", pvc(accessModes=None),
     ["spec.accessModes: Required value: at least 1 access mode is required"]),
    ("invalid access mode", pvc(accessModes=["fakemode"]),
     [f'spec.accessModes: Unsupported value: "fakemode": supported values: {MODES}']),
    ("no storage request", pvc(resources={"requests": {}}),
     ["spec.resources[storage]: Required value"]),
    ("zero storage request", pvc(resources={"requests": {"storage": "0"}}),
     ['spec.resources[storage]: Invalid value: "0": must be greater than zero']),
    ("invalid selector", pvc(selector={"matchExpressions": [{"key": "k", "operator": "In"}]}),
     ["spec.selector.matchExpressions[0].values: Required value: must be specified when "
      "`operator` is 'In' or 'NotIn'"]),
    ("bad class", pvc(storageClassName="Bad_Class"), [
        'spec.storageClassName: Invalid value: "Bad_Class": a lowercase RFC 1123 subdomain '
        "must consist of lower case alphanumeric characters, '-' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'example.com', regex used for validation "
        "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
]


@pytest.mark.parametrize(("obj", "want"), [(c[1], c[2]) for c in PVC_CASES],
                         ids=[c[0] for c in PVC_CASES])
def test_validate_persistent_volume_claim(obj: Obj, want: list[str]) -> None:
    assert errors(validate_persistent_volume_claim(obj)) == want


def _stored_claim(**spec: Any) -> Obj:
    obj = set_defaults_persistent_volume_claim(pvc(**spec))
    obj["metadata"]["resourceVersion"] = "1"
    return obj


def test_claim_spec_is_immutable_but_volume_name_once_and_bound_size() -> None:
    old = _stored_claim()
    new = copy.deepcopy(old)
    new["spec"]["volumeName"] = "pv-1"
    assert validate_persistent_volume_claim_update(new, old) == []
    bound = copy.deepcopy(new)
    bound["status"] = {"phase": "Bound", "capacity": {"storage": "10G"}}
    again = copy.deepcopy(bound)
    again["spec"]["volumeName"] = "pv-2"
    got = errors(validate_persistent_volume_claim_update(again, bound))
    assert len(got) == 1 and got[0].startswith(
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims\n")
    grown = copy.deepcopy(bound)
    grown["spec"]["resources"]["requests"]["storage"] = "20G"
    assert validate_persistent_volume_claim_update(grown, bound) == []
    shrunk = copy.deepcopy(bound)
    shrunk["spec"]["resources"]["requests"]["storage"] = "5G"
    assert errors(validate_persistent_volume_claim_update(shrunk, bound)) == [
        "spec.resources.requests.storage: Forbidden: field can not be less than "
        "status.capacity"]
    # Not bound: a size change is a spec change.
    pending = copy.deepcopy(old)
    pending["spec"]["resources"]["requests"]["storage"] = "20G"
    assert len(validate_persistent_volume_claim_update(pending, old)) == 1


def test_a_class_may_be_set_where_there_was_none() -> None:
    old = _stored_claim()
    new = copy.deepcopy(old)
    new["spec"]["storageClassName"] = "standard"
    assert validate_persistent_volume_claim_update(new, old) == []
    changed = copy.deepcopy(new)
    changed["spec"]["storageClassName"] = "other"
    assert len(validate_persistent_volume_claim_update(changed, new)) == 1


def test_claim_defaults_and_protection() -> None:
    got = set_defaults_persistent_volume_claim({"spec": {}})
    assert got["spec"]["volumeMode"] == "Filesystem" and got["status"] == {"phase": "Pending"}
    once = add_protection_finalizer({"metadata": {"finalizers": ["a"]}},
                                    "kubernetes.io/pvc-protection")
    assert once["metadata"]["finalizers"] == ["a", "kubernetes.io/pvc-protection"]
    assert add_protection_finalizer(once, "kubernetes.io/pvc-protection") == once


def test_offline_check_refuses_a_claim_without_storage() -> None:
    with pytest.raises(StatusError) as caught:
        kinds.check_object(pvc(resources={}))
    assert caught.value.message == (
        'PersistentVolumeClaim "foo" is invalid: spec.resources[storage]: Required value')
