"""svcnet/api/schema.py's with_status_zeros: a status's non-omitempty scalars at zero, as Go's
encoder writes them (typed clients require them)."""

from __future__ import annotations

from svcnet.api.schema import with_status_zeros


def test_new_objects_get_their_zero_status() -> None:
    ds = with_status_zeros({"metadata": {}}, api_version="apps/v1", kind="DaemonSet")
    assert ds["status"] == {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                            "numberMisscheduled": 0, "numberReady": 0}
    rs = with_status_zeros({"status": {"replicas": 3, "readyReplicas": 2}},
                           api_version="apps/v1", kind="ReplicaSet")
    assert rs["status"] == {"replicas": 3, "readyReplicas": 2}
    rc = with_status_zeros({"status": {}}, api_version="v1", kind="ReplicationController")
    assert rc["status"] == {"replicas": 0}


def test_kinds_without_required_status_fields_are_left_alone() -> None:
    svc: dict[str, object] = {"spec": {}}
    assert with_status_zeros(svc, api_version="v1", kind="Service") == {"spec": {}}
    assert with_status_zeros({}, api_version="v1", kind="ConfigMap") == {}
