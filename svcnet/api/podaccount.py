"""The ServiceAccount admission of a new pod: its account, and the API credentials it mounts.

Theory of operation
-------------------
plugin/pkg/admission/serviceaccount/admission.go, the mutating half, as a pure function:

* a pod that names no ServiceAccount runs as ``default`` (``spec.serviceAccountName`` and the
  deprecated ``spec.serviceAccount``, which the v1 conversion keeps equal);
* a pod without ``imagePullSecrets`` gets its ServiceAccount's;
* unless the pod (or else its ServiceAccount) sets ``automountServiceAccountToken: false``, a
  projected volume ``kube-api-access-<5 random characters>`` is added, holding what an
  in-cluster client reads: a bound token (``token``, 3607 s, which the kubelet refreshes), the
  cluster's CA (``ca.crt`` from the ``kube-root-ca.crt`` ConfigMap) and the namespace
  (``namespace``, from the downward API). Every container (init containers included) that
  does not already mount something there gets it read-only at
  ``/var/run/secrets/kubernetes.io/serviceaccount``.

Upstream also refuses a pod whose ServiceAccount does not exist yet. svcnet admits it: the
node cannot get its token until the account exists (the ServiceAccount controller makes
``default`` within moments of a namespace), so the pod waits in ContainerCreating instead of
its creator having to retry.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from typing import Any

__all__ = ["MOUNT_PATH", "ROOT_CA_CONFIG_MAP", "admit_pod_service_account"]

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
VOLUME_PREFIX = "kube-api-access-"
#: utilrand.String's alphabet: no vowels (no words), no confusable characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: The token's lifetime: 3607 s marks the kubelet-managed token of kube-api-access volumes.
TOKEN_EXPIRATION = 3607


def _api_access_volume(name: str) -> dict[str, Any]:
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP,
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def admit_pod_service_account(pod: Mapping[str, Any], account: Mapping[str, Any] | None,
                              rng: random.Random | None = None) -> dict[str, Any]:
    """The pod as the ServiceAccount admission plugin leaves it (``account``: the pod's
    ServiceAccount if it exists). Returns a new dict."""
    out = copy.deepcopy(dict(pod))
    spec = out.setdefault("spec", {})
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = name
    spec["serviceAccount"] = name
    if not spec.get("imagePullSecrets") and account is not None:
        # The account's pull secrets, when the pod names none (admission.go's
        # "Copy image pull secrets from the service account").
        secrets = [dict(ref) for ref in account.get("imagePullSecrets") or []
                   if isinstance(ref, Mapping)]
        if secrets:
            spec["imagePullSecrets"] = secrets
    automount = spec.get("automountServiceAccountToken")
    if automount is None and account is not None:
        automount = account.get("automountServiceAccountToken")
    if automount is False:
        return out
    existing = {v.get("name") for v in spec.get("volumes") or []}
    rng = rng or random.SystemRandom()
    volume = VOLUME_PREFIX + "".join(rng.choice(_ALPHABET) for _ in range(5))
    while volume in existing:
        volume = VOLUME_PREFIX + "".join(rng.choice(_ALPHABET) for _ in range(5))
    mounted = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            mounts = container.setdefault("volumeMounts", [])
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": volume, "readOnly": True, "mountPath": MOUNT_PATH})
            mounted = True
    if mounted:
        spec.setdefault("volumes", []).append(_api_access_volume(volume))
    return out
