"""A pod and its containers as CRI sees them: pure translations, tested as tables.

Theory of operation
-------------------
The kubelet's ``kuberuntime_sandbox.go`` (``generatePodSandboxConfig``) and
``kuberuntime_container.go`` (``generateContainerConfig``, with ``pkg/kubelet/cm``'s
``ResourceConfigForPod`` for limits) are followed for the fields svcnet supports:

* the sandbox: the pod's metadata, hostname, DNS (the same :class:`~svcnet.node.dnsconfig.PodDNS`
  the process runtime writes to ``resolv.conf``), host network, a shared PID namespace, and
  a cgroup parent named after the node (``/svcnet-<tag>-n<i>/pod<uid>``), so that ``svcnet
  down`` can find every cgroup a cluster's containers made;
* a container: image, ``command``/``args`` with ``$(VAR)`` expanded against the container's
  environment but *not* merged with the image's entrypoint/cmd (the runtime does that, as
  Kubernetes defines: ``command`` replaces the entrypoint, ``args`` the cmd), the user and
  group from the container's ``securityContext`` over the pod's, and limits: memory in
  bytes, CPU as a CFS quota over a 100 ms period (``MilliCPUToQuota``: at least 1 ms) and
  shares from the request (``MilliCPUToShares``: at least 2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.errors import go_quote
from svcnet.api.resourcelists import parse_quantity
from svcnet.node.cri import CriContainer, SandboxSpec
from svcnet.node.dnsconfig import PodDNS
from svcnet.node.etchosts import pod_hostname
from svcnet.node.podenv import expand_vars
from svcnet.node.pods import format_pod, is_host_network

__all__ = ["container_spec", "cpu_limits", "image_pull_policy", "image_reference_problem",
           "sandbox_spec"]

Pod = Mapping[str, Any]

_CPU_PERIOD: Final = 100_000
"""CFS period in microseconds (the kubelet's default ``cpuCFSQuotaPeriod``, 100 ms)."""
_MIN_QUOTA: Final = 1_000
_MIN_SHARES: Final = 2


def _mapping(obj: Any, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def sandbox_spec(pod: Pod, *, log_directory: str, cgroup_root: str,
                 dns: PodDNS) -> SandboxSpec:
    meta, spec = _mapping(pod, "metadata"), _mapping(pod, "spec")
    uid = str(meta.get("uid", ""))
    servers, searches, options = list(dns.servers), list(dns.searches), list(dns.options)
    labels = {str(k): str(v) for k, v in (_mapping(meta, "labels")).items()}
    return SandboxSpec(
        uid=uid, name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace") or "default"),
        hostname=pod_hostname(pod),
        log_directory=log_directory, dns_servers=servers, dns_searches=searches,
        dns_options=options, host_network=is_host_network(pod),
        share_pid=bool(spec.get("shareProcessNamespace")),
        cgroup_parent=f"{cgroup_root.rstrip('/')}/pod{uid}", labels=labels,
        privileged=any(is_privileged(c) for key in ("initContainers", "containers")
                       for c in spec.get(key) or [] if isinstance(c, Mapping)))


# The reference grammar of distribution/reference (regexp.go), which the kubelet parses an
# image name with before it asks the runtime for it.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE: Final = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::{_TAG})?(?:@{_DIGEST})?")
_NAME_MAX: Final = 255


def image_reference_problem(image: str) -> str | None:
    """Why ``image`` is no image reference (the kubelet's ``InvalidImageName``), or None."""
    match = _REFERENCE.fullmatch(image)
    prefix = (f"Failed to apply default image tag {go_quote(image)}: couldn't parse image "
              f"name {go_quote(image)}: invalid reference format")
    if match is None:
        lower = _REFERENCE.fullmatch(image.lower())
        if lower is not None and image:
            return f"{prefix}: repository name must be lowercase"
        return prefix
    if len(match.group("name")) > _NAME_MAX:
        return f"{prefix}: repository name must not be more than {_NAME_MAX} characters"
    return None


def image_pull_policy(container: Mapping[str, Any]) -> str:
    """The container's policy; when unset (a client that skipped defaulting), the API
    server's default: ``Always`` for ``:latest`` or an untagged image, else
    ``IfNotPresent``."""
    policy = container.get("imagePullPolicy")
    if policy in ("Always", "IfNotPresent", "Never"):
        return str(policy)
    image = str(container.get("image", ""))
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def cpu_limits(container: Mapping[str, Any]) -> tuple[int, int, int]:
    """(CFS quota, period, shares) from ``resources.limits.cpu`` / ``requests.cpu``; zeros
    for "unset" (the runtime's defaults)."""
    resources = _mapping(container, "resources")
    limit = parse_quantity(_mapping(resources, "limits").get("cpu"))
    request = parse_quantity(_mapping(resources, "requests").get("cpu"))
    if request is None:
        request = limit
    quota = period = shares = 0
    if limit is not None and limit > 0:
        quota = max(math.ceil(limit * _CPU_PERIOD), _MIN_QUOTA)
        period = _CPU_PERIOD
    if request is not None:
        shares = max(math.floor(request * 1024), _MIN_SHARES)
    return quota, period, shares


def _memory_limit(container: Mapping[str, Any]) -> int:
    value = parse_quantity(_mapping(_mapping(container, "resources"), "limits").get("memory"))
    return math.ceil(value) if value is not None and value > 0 else 0


def _id(container: Mapping[str, Any], pod: Pod, field: str) -> int | None:
    for ctx in (_mapping(container, "securityContext"),
                _mapping(_mapping(pod, "spec"), "securityContext")):
        value = ctx.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _capabilities(container: Mapping[str, Any], which: str) -> list[str]:
    caps = _mapping(_mapping(container, "securityContext"), "capabilities").get(which)
    return [str(c) for c in caps] if isinstance(caps, list) else []


def supplemental_groups(pod: Pod) -> list[int]:
    """The pod's ``fsGroup`` then its ``supplementalGroups`` (the kubelet's order)."""
    ctx = _mapping(_mapping(pod, "spec"), "securityContext")
    groups = [ctx.get("fsGroup"), *(ctx.get("supplementalGroups") or [])]
    return [g for g in groups if isinstance(g, int) and not isinstance(g, bool)]


def is_privileged(container: Mapping[str, Any]) -> bool:
    return _mapping(container, "securityContext").get("privileged") is True


def run_as_non_root(pod: Pod, container: Mapping[str, Any]) -> bool:
    """``runAsNonRoot``, the container's over the pod's."""
    own, pod_ctx = (_mapping(container, "securityContext"),
                    _mapping(_mapping(pod, "spec"), "securityContext"))
    return own.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True


def run_as_non_root_problem(pod: Pod, container: Mapping[str, Any],
                            image_user: tuple[int | None, str]) -> str | None:
    """The kubelet's ``verifyRunAsNonRoot``: why a ``runAsNonRoot`` container may not start
    as the image's (or its own) user, or None. The pod's setting applies unless the
    container has its own."""
    if not run_as_non_root(pod, container):
        return None
    where = f'(pod: "{format_pod(pod)}", container: {container.get("name", "")})'
    user = _id(container, pod, "runAsUser")
    if user is not None:
        return None if user != 0 else f"container's runAsUser breaks non-root policy {where}"
    uid, name = image_user
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    if uid is None and name:
        return (f"container has runAsNonRoot and image has non-numeric user ({name}), "
                f"cannot verify user is non-root {where}")
    return None


def container_spec(pod: Pod, container: Mapping[str, Any], env: Mapping[str, str], *,
                   sandbox_id: str, sandbox: SandboxSpec) -> CriContainer:
    """The CRI side of one container run (:class:`~svcnet.node.cri.CriContainer`), its
    security settings as the kubelet's ``determineEffectiveSecurityContext`` gives them:
    ``allowPrivilegeEscalation: false`` is ``no_new_privs``."""
    quota, period, shares = cpu_limits(container)
    ctx = _mapping(container, "securityContext")
    return CriContainer(
        image=str(container.get("image", "")), sandbox_id=sandbox_id, sandbox=sandbox,
        command=[expand_vars(str(a), env) for a in container.get("command") or []],
        args=[expand_vars(str(a), env) for a in container.get("args") or []],
        run_as_user=_id(container, pod, "runAsUser"),
        run_as_group=_id(container, pod, "runAsGroup"),
        memory_limit=_memory_limit(container), cpu_quota=quota, cpu_period=period,
        cpu_shares=shares, tty=bool(container.get("tty")),
        stdin=bool(container.get("stdin")), privileged=is_privileged(container),
        readonly_rootfs=ctx.get("readOnlyRootFilesystem") is True,
        no_new_privs=ctx.get("allowPrivilegeEscalation") is False,
        add_capabilities=_capabilities(container, "add"),
        drop_capabilities=_capabilities(container, "drop"),
        supplemental_groups=supplemental_groups(pod))
