"""A pod's ``/etc/hosts`` and hostname, as the kubelet makes them.

Theory of operation
-------------------
The kubelet gives every container of a pod that has its own network a hosts file it manages
(``makeHostsMount`` / ``managedHostsFileContent`` in pkg/kubelet/kubelet_pods.go), so that a
pod resolves its own name and ``spec.hostAliases`` work without DNS:

* a header line, ``localhost`` for IPv4 and IPv6, the IPv6 multicast names;
* one line per pod IP naming the pod's hostname, preceded by its fully qualified name when
  the pod sets ``spec.subdomain`` (``<hostname>.<subdomain>.<namespace>.svc.<cluster domain>``,
  the name a headless Service of that subdomain gives it in DNS);
* after a blank line and a comment, one line per host alias: its IP, then its hostnames.

The hostname (``GeneratePodHostNameAndDomain``) is ``spec.hostname``, else the pod's name,
cut to 63 characters without a trailing ``-`` or ``.``.

Everything here is pure; the runner writes the file (svcnet/node/runner.py): for the process
runtime as ``/etc/netns/<pod netns>/hosts``, which ``ip netns exec`` binds over ``/etc/hosts``
as it does ``resolv.conf``; for a CRI container as ``pods/<uid>/etc-hosts`` mounted at
``/etc/hosts``, as the kubelet mounts it. Host-network pods keep the node's file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from svcnet.api.access import mapping_of

__all__ = ["HOSTS_PATH", "managed_hosts", "pod_domain", "pod_hostname"]

HOSTS_PATH: Final = "/etc/hosts"
"""Where a container sees the hosts file."""

_HEADER: Final = "# Kubernetes-managed hosts file.\n"
_FIXED: Final = ("127.0.0.1\tlocalhost\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\n"
                 "fe00::0\tip6-mcastprefix\n"
                 "fe00::1\tip6-allnodes\n"
                 "fe00::2\tip6-allrouters\n")
_HOSTNAME_MAX: Final = 63


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """The pod's hostname: ``spec.hostname`` or its name, at most 63 characters, without a
    trailing ``-`` or ``.`` where it had to be cut."""
    name = str(mapping_of(pod, "spec").get("hostname") or mapping_of(pod, "metadata").get("name")
               or "")
    if len(name) <= _HOSTNAME_MAX:
        return name
    return name[:_HOSTNAME_MAX].rstrip("-.")


def pod_domain(pod: Mapping[str, Any], cluster_domain: str) -> str:
    """The domain of the pod's hostname: ``<subdomain>.<namespace>.svc.<cluster domain>``
    when it sets ``spec.subdomain``, else empty."""
    subdomain = str(mapping_of(pod, "spec").get("subdomain") or "")
    if not subdomain:
        return ""
    namespace = str(mapping_of(pod, "metadata").get("namespace") or "default")
    return f"{subdomain}.{namespace}.svc.{cluster_domain}"


def _alias_lines(pod: Mapping[str, Any]) -> list[str]:
    """``spec.hostAliases`` as hosts lines: the IP, then each hostname, tab-separated."""
    return [str(alias.get("ip") or "") + "\t" + "\t".join(map(str, alias.get("hostnames") or ()))
            for alias in mapping_of(pod, "spec").get("hostAliases") or ()
            if isinstance(alias, Mapping)]


def managed_hosts(pod: Mapping[str, Any], pod_ips: Iterable[str], cluster_domain: str) -> str:
    """The hosts file of a pod with its own network, addressed ``pod_ips`` (primary first)."""
    hostname, domain = pod_hostname(pod), pod_domain(pod, cluster_domain)
    names = f"{hostname}.{domain}\t{hostname}" if domain else hostname
    text = _HEADER + _FIXED + "".join(f"{ip}\t{names}\n" for ip in pod_ips)
    aliases = _alias_lines(pod)
    if aliases:
        text += "\n# Entries added by HostAliases.\n" + "".join(f"{line}\n" for line in aliases)
    return text
