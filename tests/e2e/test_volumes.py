"""PersistentVolumes and PersistentVolumeClaims (core/v1) through a real `svcnet server` (its
controller manager runs the PV binder) and the real kubectl: a static bind shown Bound by
``kubectl get pv,pvc``, a claim with an unmatched class left Pending, release on deletion, the
protection finalizers, upstream's 422s and ``kubectl explain``.

The session cluster is shared: each test uses its own namespace and volume names, and a class
name of its own so that no other test's claim can take its volumes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Cluster

Obj = dict[str, Any]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _pv(name: str, size: str, cls: str) -> str:
    return (f"apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n"
            f"  capacity: {{storage: {size}}}\n  accessModes: [ReadWriteOnce]\n"
            f"  storageClassName: {cls}\n  hostPath: {{path: /tmp/{name}}}\n")


def _pvc(name: str, size: str, cls: str) -> str:
    return (f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n"
            f"  accessModes: [ReadWriteOnce]\n  storageClassName: {cls}\n"
            f"  resources: {{requests: {{storage: {size}}}}}\n")


def _get(cluster: Cluster, *what: str) -> Obj:
    obj: Obj = json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)
    return obj


def _until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_claim_binds_to_the_smallest_fitting_volume(cluster: Cluster) -> None:
    ns, cls = _name("vol"), _name("local")
    small, big, claim = _name("small"), _name("big"), "data"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", "-", stdin=_pv(small, "1Gi", cls) + "---\n"
                    + _pv(big, "5Gi", cls))
    _until(lambda: _get(cluster, "pv", small)["status"]["phase"] == "Available",
           "the volume to be Available")
    pv = _get(cluster, "pv", small)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_pvc(claim, "2Gi", cls))
    _until(lambda: _get(cluster, "pvc", "-n", ns, claim)["status"]["phase"] == "Bound",
           "the claim to be Bound")
    pvc = _get(cluster, "pvc", "-n", ns, claim)
    assert pvc["spec"]["volumeName"] == big
    assert pvc["status"]["capacity"] == {"storage": "5Gi"}
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    lines = cluster.kubectl("get", "pv", big).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY",
                                "STATUS", "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS",
                                "REASON", "AGE"]
    assert lines[1].split()[:-1] == [big, "5Gi", "RWO", "Retain", "Bound", f"{ns}/{claim}",
                                     cls, "<unset>"]
    lines = cluster.kubectl("get", "pvc", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES",
                                "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert lines[1].split()[:-1] == [claim, "Bound", big, "5Gi", "RWO", cls, "<unset>"]
    both = cluster.kubectl("get", "pv,pvc", "-n", ns).stdout
    assert f"persistentvolume/{big}" in both and f"persistentvolumeclaim/{claim}" in both
    # Deleting the claim releases the (Retain) volume; the claim's finalizer goes since no
    # pod uses it.
    cluster.kubectl("delete", "pvc", "-n", ns, claim, "--timeout=30s")
    _until(lambda: _get(cluster, "pv", big)["status"]["phase"] == "Released",
           "the volume to be Released")
    assert _get(cluster, "pv", small)["status"]["phase"] == "Available"
    cluster.kubectl("delete", "pv", small, big, "--timeout=30s")
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_a_claim_without_a_matching_volume_stays_pending(cluster: Cluster) -> None:
    ns = _name("vol")
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_pvc("wants", "1Gi", "standard"))
    time.sleep(1)
    row = cluster.kubectl("get", "pvc", "-n", ns, "wants", "--no-headers").stdout.split()
    assert row[:2] == ["wants", "Pending"]
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_invalid_claims_and_volumes_are_422s(cluster: Cluster) -> None:
    ns = _name("vol")
    cluster.kubectl("create", "namespace", ns)
    bad = _pvc("nosize", "1Gi", "x").replace("  resources: {requests: {storage: 1Gi}}\n", "")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=bad, check=False)
    assert r.stderr.strip() == ('The PersistentVolumeClaim "nosize" is invalid: '
                                "spec.resources[storage]: Required value")
    name = _name("nosource")
    source_less = _pv(name, "1Gi", "x").replace(f"  hostPath: {{path: /tmp/{name}}}\n", "")
    r = cluster.kubectl("apply", "-f", "-", stdin=source_less, check=False)
    assert r.stderr.strip() == (f'The PersistentVolume "{name}" is invalid: spec: Required '
                                "value: must specify a volume type")
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_explain_persistent_volume_claim_spec(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "pvc.spec.resources").stdout
    assert "KIND:       PersistentVolumeClaim" in out and "requests\t<map[string]" in out
    assert "Requests describes the minimum amount of compute resources required." in out

