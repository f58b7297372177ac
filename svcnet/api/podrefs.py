"""The ConfigMaps, Secrets and PersistentVolumeClaims a pod names: what its node reads, and
all that it may read.

Theory of operation. A pod names ConfigMaps and Secrets in its containers' (and init
containers') ``env[].valueFrom.configMapKeyRef``/``secretKeyRef`` and ``envFrom`` sources, and in
its ``configMap``, ``secret`` and ``projected`` volumes, and its ``imagePullSecrets`` — the
references
``podutil.VisitPodSecretNames`` / ``VisitPodConfigmapNames`` (pkg/api/v1/pod/util.go) walk for
the kubelet's managers and the Node authorizer's graph
(plugin/pkg/auth/authorizer/node/graph_populator.go). The node agent watches exactly these
objects (svcnet/node/objects.py); the API server lets a node read a ConfigMap or Secret only
when a pod bound to it names it (svcnet/apiserver/auth.py).

The claims of its ``persistentVolumeClaim`` volumes (:func:`pod_claim_names`) are the graph's
``pvc -> pod`` edges (``AddPod``); a PersistentVolume is related to a node through the claim
its ``spec.claimRef`` names (``AddPV``'s ``pv -> pvc``), so a node may read the volume bound to
a claim one of its pods names, and no other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

__all__ = ["CONFIG_MAP", "PERSISTENT_VOLUME", "PERSISTENT_VOLUME_CLAIM", "SECRET",
           "pod_claim_names", "pod_config_references"]

CONFIG_MAP: Final = "ConfigMap"
SECRET: Final = "Secret"
PERSISTENT_VOLUME_CLAIM: Final = "PersistentVolumeClaim"
PERSISTENT_VOLUME: Final = "PersistentVolume"
_ENV_FROM: Final = (("configMapRef", CONFIG_MAP), ("secretRef", SECRET))
_ENV_REFS: Final = (("configMapKeyRef", CONFIG_MAP), ("secretKeyRef", SECRET))
_PROJECTED: Final = (("configMap", CONFIG_MAP, "name"), ("secret", SECRET, "name"))


def _maps(items: Any) -> Iterator[Mapping[str, Any]]:
    for item in items or ():
        if isinstance(item, Mapping):
            yield item


def _named(ref: Any, kind: str, key: str = "name") -> Iterator[tuple[str, str]]:
    if isinstance(ref, Mapping) and ref.get(key):
        yield kind, str(ref[key])


def _container_refs(c: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for item in _maps(c.get("envFrom")):
        for key, kind in _ENV_FROM:
            yield from _named(item.get(key), kind)
    for item in _maps(c.get("env")):
        source = item.get("valueFrom")
        if isinstance(source, Mapping):
            for key, kind in _ENV_REFS:
                yield from _named(source.get(key), kind)


def _volume_refs(vol: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield from _named(vol.get("configMap"), CONFIG_MAP)
    yield from _named(vol.get("secret"), SECRET, "secretName")
    projected = vol.get("projected")
    if isinstance(projected, Mapping):
        for source in _maps(projected.get("sources")):
            for key, kind, name_key in _PROJECTED:
                yield from _named(source.get(key), kind, name_key)


def pod_config_references(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod names (kind ``ConfigMap`` or
    ``Secret``; the namespace is the pod's)."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return set()
    refs: set[tuple[str, str]] = set()
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _maps(spec.get(key)):
            refs.update(_container_refs(c))
    for vol in _maps(spec.get("volumes")):
        refs.update(_volume_refs(vol))
    for ref in _maps(spec.get("imagePullSecrets")):
        refs.update(_named(ref, SECRET))
    return refs


def pod_claim_names(pod: Mapping[str, Any]) -> list[str]:
    """The ``claimName`` of every ``persistentVolumeClaim`` volume of the pod, in the order of
    its volumes, each once (the claims are in the pod's namespace)."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return []
    return list(dict.fromkeys(
        name for vol in _maps(spec.get("volumes"))
        for _kind, name in _named(vol.get("persistentVolumeClaim"), PERSISTENT_VOLUME_CLAIM,
                                  "claimName")))
