"""The ConfigMaps and Secrets a pod names (what its node may read and watches)."""

from __future__ import annotations

from svcnet.api.podrefs import pod_claim_names, pod_config_references


def test_every_kind_of_reference() -> None:
    pod = {"spec": {
        "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}],
        "containers": [{"name": "c", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}},
            {"name": "B", "value": "plain"}]}],
        "volumes": [{"name": "v1", "secret": {"secretName": "s-vol"}},
                    {"name": "v2", "projected": {"sources": [
                        {"configMap": {"name": "cm-proj"}}, {"serviceAccountToken": {}}]}}],
        "imagePullSecrets": [{"name": "regcred"}, {}, "junk"],
    }}
    assert pod_config_references(pod) == {
        ("ConfigMap", "cm-init"), ("Secret", "s-env"), ("Secret", "s-vol"),
        ("ConfigMap", "cm-proj"), ("Secret", "regcred")}
    assert pod_config_references({"spec": None}) == set()


def test_the_claims_of_persistent_volume_claim_volumes() -> None:
    pod = {"spec": {"volumes": [
        {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "b", "persistentVolumeClaim": {"claimName": "logs", "readOnly": True}},
        {"name": "c", "persistentVolumeClaim": {}}, {"name": "d", "emptyDir": {}},
        {"name": "e", "persistentVolumeClaim": {"claimName": "data"}}]}}
    assert pod_claim_names(pod) == ["data", "logs"]  # in the volumes' order, each once
    assert pod_config_references(pod) == set()
    assert pod_claim_names({"spec": None}) == []
