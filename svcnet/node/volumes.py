"""What a pod's volumes hold and where its containers see them: pure functions only.

Theory of operation
-------------------
A volume of a pod is a directory under the pod's state directory,
``STATE/pods/<uid>/volumes/<plugin>/<volume>`` (the kubelet's
``/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~configmap/<name>``). For the volumes whose
content comes from the API, :func:`volume_payload` computes the files as data — relative path
→ bytes and mode — from the pod and the objects a :data:`~svcnet.node.podenv.Lookup` gives,
following the kubelet's volume plugins:

* ``configMap`` (pkg/volume/configmap): every key of ``data`` and ``binaryData``, or only
  ``items`` (``key`` → ``path``, ``mode``), with ``defaultMode`` (0644); a missing ConfigMap
  is an error (``configmap "x" not found``) unless ``optional``, then the volume is empty; an
  item naming a missing key is ``configmap references non-existent config key: k`` unless
  ``optional``;
* ``secret`` (pkg/volume/secret): the same over the Secret's decoded ``data``
  (``references non-existent secret key: k``);
* ``downwardAPI`` (pkg/volume/downwardapi): ``items`` with a ``fieldRef`` (metadata only) or a
  ``resourceFieldRef`` (with ``containerName``);
* ``projected`` (pkg/volume/projected): the files of its ``configMap``, ``secret``,
  ``downwardAPI`` and ``serviceAccountToken`` sources, later sources winning, errors of all
  sources joined the way ``utilerrors.NewAggregate`` prints them. A token source's file
  (``path``) holds the token a :data:`TokenLookup` gives for its :class:`TokenKey` (the pod's
  ServiceAccount, ``spec.serviceAccountName`` or ``default``; the source's ``audience``, none
  meaning the API's; ``expirationSeconds``, default 3600; bound to the pod's name and uid),
  with the volume's ``defaultMode``, or 0600 when the pod has an ``fsGroup`` or one
  ``runAsUser`` for all its containers (collectData's rule: the kubelet then relies on
  SetVolumeOwnership; svcnet applies neither, but keeps the mode). The lookup, not this module,
  talks to the API: :mod:`.tokens` requests, caches and refreshes the tokens.

:mod:`.atomicwriter` writes a payload with the kubelet's atomic-writer layout, and writes it
again (atomically) whenever a later sync computes a different one: that is how a ConfigMap
update reaches a running container. ``emptyDir`` volumes are plain directories (mode 0777, on
the state directory's filesystem even for ``medium: Memory``).

Two kinds mount a path of the host rather than a directory of the pod; :func:`host_source`
says which path (a :class:`HostSource`), :mod:`.hostpath` checks and creates it before the
containers start, and :func:`container_mounts` binds it:

* ``hostPath`` (pkg/volume/hostpath): the source's ``path``, checked against its ``type``;
* ``persistentVolumeClaim``: the claim, in the pod's namespace, must exist, not be being
  deleted, be ``Bound`` with a ``spec.volumeName``, and that PersistentVolume's ``claimRef``
  must name the claim (its uid); then the volume's ``hostPath`` (with its ``type``) or
  ``local.path`` is the source, read-only when the pod's source says ``readOnly``. Each failure
  is a :class:`ClaimError` with the message of the kubelet's volume populator
  (pkg/kubelet/volumemanager/populator/desired_state_of_world_populator.go:
  ``error processing PVC ns/data: PVC is not bound``), and a volume of another source (nfs,
  csi, ...) one naming the source. A volume of ``volumeMode: Block`` cannot be mounted.

:func:`container_mounts` turns a container's ``volumeMounts`` into :class:`Mount` s (host
source, container target, read-only) for :mod:`.mounter`, which makes them in the container's
private mount namespace. Mounts are sorted by target depth, as runc does, so a mount inside
another lands on top of it. Volume kinds svcnet does not implement make the container wait
with a message naming them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from svcnet.api.access import mapping_of
from svcnet.api.errors import go_quote
from svcnet.api.podrefs import CONFIG_MAP, PERSISTENT_VOLUME, PERSISTENT_VOLUME_CLAIM, SECRET
from svcnet.node.podenv import (
    ConfigError,
    Lookup,
    NotFound,
    container_resource_value,
    decoded_data,
    expand_vars,
    extract_field_path,
)

__all__ = [
    "DEFAULT_MODE",
    "DEFAULT_TOKEN_EXPIRATION",
    "HOST_VOLUMES",
    "ClaimError",
    "FileProjection",
    "HostSource",
    "Mount",
    "TokenKey",
    "TokenLookup",
    "VolumeError",
    "container_mounts",
    "host_source",
    "pod_token_keys",
    "volume_dir",
    "volume_kind",
    "volume_payload",
]

Obj = Mapping[str, Any]
DEFAULT_MODE: Final = 0o644
PLUGINS: Final = {
    "configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api", "projected": "kubernetes.io~projected",
    "emptyDir": "kubernetes.io~empty-dir",
}
API_VOLUMES: Final = frozenset({"configMap", "secret", "downwardAPI", "projected"})
HOST_VOLUMES: Final = frozenset({"hostPath", "persistentVolumeClaim"})
"""Volume kinds whose source is a path of the host (:func:`host_source`)."""
HOST_PATH: Final = "hostPath"
LOCAL: Final = "local"
DEFAULT_TOKEN_EXPIRATION: Final = 3600
"""A ``serviceAccountToken`` source's ``expirationSeconds`` when none is given (the API
default)."""


class VolumeError(ConfigError):
    """A volume cannot be set up (the kubelet's ``FailedMount``)."""


class ClaimError(VolumeError):
    """A ``persistentVolumeClaim`` volume's claim or volume is not usable (yet): the message
    of the kubelet's volume populator, ``error processing PVC <ns>/<claim>: ...``."""


@dataclass(frozen=True, slots=True)
class HostSource:
    """The host path a ``hostPath`` or ``persistentVolumeClaim`` volume mounts."""

    path: str
    plugin: str
    """``hostPath`` or ``local``: which plugin's checks :mod:`.hostpath` applies."""
    type: str = ""
    """A ``hostPath``'s ``type`` (``""``: no check)."""
    read_only: bool = False
    """The pod's ``persistentVolumeClaim.readOnly``."""
    spec_name: str = ""
    """The name the kubelet's messages give the volume: the pod's volume's, or for a claim
    the PersistentVolume's."""


@dataclass(frozen=True, slots=True)
class FileProjection:
    data: bytes
    mode: int


Payload = dict[str, FileProjection]


@dataclass(frozen=True, slots=True)
class Mount:
    source: str
    target: str
    read_only: bool = False
    volume: str = ""
    """The volume's directory (a subPath source must stay inside it)."""


@dataclass(frozen=True, slots=True)
class TokenKey:
    """One token a pod needs: what the TokenRequest asks for (upstream's cache key)."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audience: str
    """Empty: the API server's own audiences."""
    expiration_seconds: int


TokenLookup = Callable[[TokenKey], str]
"""``tokens(key)``: the token, or :class:`VolumeError` with the kubelet's message."""


def _no_claims(kind: str, namespace: str, name: str) -> Obj | None:
    return None


def _no_tokens(key: TokenKey) -> str:
    raise VolumeError(f"cannot setup projected volume because kube client is not configured "
                      f"(token for serviceaccount {key.namespace}/{key.service_account})")


def token_key(pod: Obj, source: Obj) -> TokenKey:
    """The token a ``serviceAccountToken`` projection of ``pod`` asks for."""
    meta = mapping_of(pod, "metadata")
    seconds = source.get("expirationSeconds")
    return TokenKey(
        namespace=str(meta.get("namespace") or "default"),
        service_account=str(mapping_of(pod, "spec").get("serviceAccountName") or "default"),
        pod_name=str(meta.get("name") or ""), pod_uid=str(meta.get("uid") or ""),
        audience=str(source.get("audience") or ""),
        expiration_seconds=seconds if isinstance(seconds, int) and not isinstance(
            seconds, bool) else DEFAULT_TOKEN_EXPIRATION)


def pod_token_keys(pod: Obj) -> set[TokenKey]:
    """Every token the pod's projected volumes hold."""
    keys: set[TokenKey] = set()
    for volume in mapping_of(pod, "spec").get("volumes") or []:
        projected = volume.get("projected") if isinstance(volume, Mapping) else None
        if not isinstance(projected, Mapping):
            continue
        for item in projected.get("sources") or []:
            if isinstance(item, Mapping) and isinstance(
                    sub := item.get("serviceAccountToken"), Mapping):
                keys.add(token_key(pod, sub))
    return keys


def _fs_user(spec: Obj) -> object:
    """volume.FsUserFrom: the ``runAsUser`` every container runs with, if they agree."""
    pod_user = mapping_of(spec, "securityContext").get("runAsUser")
    users = set()
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, Mapping):
                continue
            user = mapping_of(c, "securityContext").get("runAsUser", pod_user)
            if user is None:
                return None
            users.add(user)
    return users.pop() if len(users) == 1 else None


def _token_mode(pod: Obj, default_mode: int) -> int:
    spec = mapping_of(pod, "spec")
    if mapping_of(spec, "securityContext").get("fsGroup") is not None or \
            _fs_user(spec) is not None:
        return 0o600
    return default_mode


def volume_kind(volume: Obj) -> str:
    """The volume's source key (``configMap``, ``emptyDir``, ...)."""
    for key in volume:
        if key != "name":
            return str(key)
    return "emptyDir"


def volume_dir(pod_dir: Path, volume: Obj) -> Path:
    kind = volume_kind(volume)
    return pod_dir / "volumes" / PLUGINS.get(kind, kind) / str(volume.get("name"))


def _mode(item: Obj, default: int) -> int:
    mode = item.get("mode")
    return mode if isinstance(mode, int) and not isinstance(mode, bool) else default


def _default_mode(source: Obj) -> int:
    return _mode({"mode": source.get("defaultMode")}, DEFAULT_MODE)


def _object_payload(source: Obj, kind: str, obj: Obj | None, default_mode: int) -> Payload:
    """configmap.MakePayload / secret.MakePayload."""
    optional = bool(source.get("optional"))
    data: dict[str, bytes] = {}
    if obj is not None:
        data = decoded_data(obj, kind)
        if kind == CONFIG_MAP:
            data.update(decoded_data(obj, kind, "binaryData"))
    items = [i for i in source.get("items") or [] if isinstance(i, Mapping)]
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in data.items()}
    payload: Payload = {}
    for item in items:
        key = str(item.get("key") or "")
        if key not in data:
            if optional:
                continue
            what = "configmap references non-existent config key" if kind == CONFIG_MAP \
                else "references non-existent secret key"
            raise VolumeError(f"{what}: {key}")
        payload[str(item.get("path") or key)] = FileProjection(data[key],
                                                               _mode(item, default_mode))
    return payload


def _get(lookup: Lookup, pod: Obj, kind: str, source: Obj) -> Obj | None:
    namespace = str(mapping_of(pod, "metadata").get("namespace") or "default")
    name = str(source.get("name") or "")
    obj = lookup(kind, namespace, name)
    if obj is None and not source.get("optional"):
        raise NotFound(f"{'configmap' if kind == CONFIG_MAP else 'secret'} {go_quote(name)} "
                       "not found")
    return obj


def _downward_payload(items: Sequence[Any], pod: Obj, default_mode: int,
                      allocatable: Mapping[str, str] | None) -> Payload:
    """downwardapi.CollectData (errors of all items joined)."""
    payload: Payload = {}
    errors: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        try:
            if isinstance(item.get("fieldRef"), Mapping):
                value = extract_field_path(pod, str(item["fieldRef"].get("fieldPath") or ""))
            elif isinstance(item.get("resourceFieldRef"), Mapping):
                value = container_resource_value(item["resourceFieldRef"], pod, None,
                                                 allocatable)
            else:
                continue
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        payload[str(item.get("path") or "")] = FileProjection(value.encode(),
                                                              _mode(item, default_mode))
    if errors:
        raise VolumeError(_aggregate(errors))
    return payload


def _aggregate(errors: Sequence[str]) -> str:
    """utilerrors.NewAggregate's Error(): one message as is, several in brackets."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def _projected_payload(source: Obj, pod: Obj, lookup: Lookup,
                       allocatable: Mapping[str, str] | None, tokens: TokenLookup) -> Payload:
    default_mode = _default_mode(source)
    payload: Payload = {}
    errors: list[str] = []
    for item in source.get("sources") or []:
        if not isinstance(item, Mapping):
            continue
        try:
            if isinstance(sub := item.get("configMap"), Mapping):
                payload.update(_object_payload(sub, CONFIG_MAP,
                                               _get(lookup, pod, CONFIG_MAP, sub),
                                               default_mode))
            elif isinstance(sub := item.get("secret"), Mapping):
                payload.update(_object_payload(sub, SECRET, _get(lookup, pod, SECRET, sub),
                                               default_mode))
            elif isinstance(sub := item.get("downwardAPI"), Mapping):
                payload.update(_downward_payload(sub.get("items") or [], pod, default_mode,
                                                 allocatable))
            elif isinstance(sub := item.get("serviceAccountToken"), Mapping):
                token = tokens(token_key(pod, sub))
                payload[str(sub.get("path") or "")] = FileProjection(
                    token.encode(), _token_mode(pod, default_mode))
            else:
                kind = next(iter(item), "source")
                errors.append(f"projected {kind} sources are not supported by svcnet")
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise VolumeError(_aggregate(errors))
    return payload


def volume_payload(pod: Obj, volume: Obj, lookup: Lookup,
                   allocatable: Mapping[str, str] | None = None,
                   tokens: TokenLookup | None = None) -> Payload | None:
    """The files of an API-backed volume (None: not one, e.g. ``emptyDir``), ServiceAccount
    tokens from ``tokens``. Raises :class:`VolumeError` with the kubelet's message."""
    kind = volume_kind(volume)
    source = volume.get(kind)
    if kind not in API_VOLUMES:
        return None
    if not isinstance(source, Mapping):
        source = {}
    try:
        if kind == "configMap":
            return _object_payload(source, CONFIG_MAP, _get(lookup, pod, CONFIG_MAP, source),
                                   _default_mode(source))
        if kind == "secret":
            named = {**source, "name": source.get("secretName")}
            return _object_payload(named, SECRET, _get(lookup, pod, SECRET, named),
                                   _default_mode(source))
        if kind == "downwardAPI":
            return _downward_payload(source.get("items") or [], pod, _default_mode(source),
                                     allocatable)
        return _projected_payload(source, pod, lookup, allocatable, tokens or _no_tokens)
    except VolumeError:
        raise
    except ConfigError as exc:
        raise VolumeError(str(exc)) from exc


def _mounted(pod: Obj, volume: str) -> bool:
    """Whether some container of the pod has ``volume`` in its ``volumeMounts``."""
    spec = mapping_of(pod, "spec")
    return any(isinstance(vm, Mapping) and vm.get("name") == volume
               for key in ("initContainers", "containers", "ephemeralContainers")
               for c in spec.get(key) or [] if isinstance(c, Mapping)
               for vm in c.get("volumeMounts") or [])


def _claim_source(pod: Obj, volume: Obj, source: Obj, lookup: Lookup) -> HostSource:
    """getPVCExtractPV and getPVSpec: the bound volume of the claim, as a host path."""
    namespace = str(mapping_of(pod, "metadata").get("namespace") or "default")
    claim_name = str(source.get("claimName") or "")

    def error(message: str) -> ClaimError:
        return ClaimError(f"error processing PVC {namespace}/{claim_name}: {message}")

    try:
        claim = lookup(PERSISTENT_VOLUME_CLAIM, namespace, claim_name)
    except ConfigError as exc:
        raise error(f"failed to fetch PVC from API server: {exc}") from exc
    if claim is None:
        raise error("failed to fetch PVC from API server: persistentvolumeclaims "
                    f"{go_quote(claim_name)} not found")
    if mapping_of(claim, "metadata").get("deletionTimestamp"):
        raise error("PVC is being deleted")
    if mapping_of(claim, "status").get("phase") != "Bound":
        raise error("PVC is not bound")
    pv_name = str(mapping_of(claim, "spec").get("volumeName") or "")
    if not pv_name:
        raise error("PVC has empty pvc.Spec.VolumeName")
    try:
        pv = lookup(PERSISTENT_VOLUME, "", pv_name)
    except ConfigError as exc:
        raise error(f"failed to fetch PV {pv_name} from API server: {exc}") from exc
    if pv is None:
        raise error(f"failed to fetch PV {pv_name} from API server: persistentvolumes "
                    f"{go_quote(pv_name)} not found")
    spec = mapping_of(pv, "spec")
    ref = spec.get("claimRef")
    if not isinstance(ref, Mapping):
        raise error(f"found PV object {pv_name} but it has a nil pv.Spec.ClaimRef indicating "
                    "it is not yet bound to the claim")
    claim_uid = str(mapping_of(claim, "metadata").get("uid") or "")
    if str(ref.get("uid") or "") != claim_uid:
        raise error(f"found PV object {pv_name} but its pv.Spec.ClaimRef.UID "
                    f"{ref.get('uid') or ''} does not point to claim.UID {claim_uid}")
    mode = str(spec.get("volumeMode") or "Filesystem")
    if mode != "Filesystem":
        if _mounted(pod, str(volume.get("name"))):
            raise error(f"volume {volume.get('name')} has volumeMode {mode}, but is "
                        "specified in volumeMounts")
        raise error(f"PersistentVolume {go_quote(pv_name)}: {mode} volumes are not supported "
                    "by svcnet")
    read_only = bool(source.get("readOnly"))
    if isinstance(host := spec.get(HOST_PATH), Mapping):
        return HostSource(str(host.get("path") or ""), HOST_PATH, str(host.get("type") or ""),
                          read_only, pv_name)
    if isinstance(local := spec.get(LOCAL), Mapping):
        return HostSource(str(local.get("path") or ""), LOCAL, "", read_only, pv_name)
    kind = next((k for k, v in spec.items() if isinstance(v, Mapping) and k not in (
        "capacity", "claimRef", "nodeAffinity", "mountOptions")), "its")
    raise error(f"PersistentVolume {go_quote(pv_name)}: {kind} volumes are not supported by "
                "svcnet (only hostPath and local)")


def host_source(pod: Obj, volume: Obj, lookup: Lookup) -> HostSource | None:
    """The host path a ``hostPath`` or ``persistentVolumeClaim`` volume mounts (None: the
    volume is of another kind). Raises :class:`ClaimError` while a claim is not usable."""
    kind = volume_kind(volume)
    source = volume.get(kind)
    if kind not in HOST_VOLUMES:
        return None
    if not isinstance(source, Mapping):
        source = {}
    if kind == HOST_PATH:
        return HostSource(str(source.get("path") or ""), HOST_PATH,
                          str(source.get("type") or ""), False, str(volume.get("name")))
    return _claim_source(pod, volume, source, lookup)


def container_mounts(pod: Obj, container: Obj, pod_dir: Path,
                     env: Mapping[str, str] | None = None,
                     lookup: Lookup | None = None,
                     host_sources: Mapping[str, HostSource] | None = None) -> list[Mount]:
    """The container's ``volumeMounts`` as host source → container target, sorted by the
    target's depth; ``subPathExpr`` is expanded against the container's ``env``; the host
    path of a hostPath or claim volume from ``host_sources`` (by volume name: what was set
    up), else :func:`host_source` over ``lookup``. Raises :class:`VolumeError` for what svcnet
    cannot mount."""
    volumes = {str(v.get("name")): v for v in mapping_of(pod, "spec").get("volumes") or []
               if isinstance(v, Mapping)}
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        if not isinstance(vm, Mapping):
            continue
        name = str(vm.get("name") or "")
        volume = volumes.get(name)
        if volume is None:
            raise VolumeError(f"cannot find volume {go_quote(name)} to mount into container "
                              f"{go_quote(str(container.get('name')))}")
        kind = volume_kind(volume)
        host = (host_sources or {}).get(name) if kind in HOST_VOLUMES else None
        host = host or host_source(pod, volume, lookup or _no_claims)
        if host is not None:
            source = root = Path(host.path)
        elif kind not in PLUGINS:
            raise VolumeError(f"volume {go_quote(name)}: {kind} volumes are not supported by "
                              "svcnet")
        else:
            source = root = volume_dir(pod_dir, volume)
        sub = str(vm.get("subPath") or "")
        if not sub and vm.get("subPathExpr"):
            sub = expand_vars(str(vm["subPathExpr"]), env or {})
        if sub:
            rel = PurePosixPath(sub)
            if rel.is_absolute() or ".." in rel.parts:
                raise VolumeError(f"error SubPath `{sub}` must not be an absolute path"
                                  if rel.is_absolute() else
                                  f"unable to provision SubPath `{sub}`: must not contain "
                                  "'..'")
            source = source / rel
        target = str(PurePosixPath("/") / str(vm.get("mountPath") or ""))
        # API data volumes are always read-only in the container (ReadOnlyAPIDataVolumes).
        read_only = bool(vm.get("readOnly")) or kind in API_VOLUMES or (
            host is not None and host.read_only)
        mounts.append(Mount(str(source), target, read_only, str(root)))
    return sorted(mounts, key=lambda m: len(PurePosixPath(m.target).parts))
