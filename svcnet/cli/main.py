"""The ``svcnet`` command.

Exit codes (DESIGN §2): 0 success; 1 failure with a one-line reason on stderr, no traceback
unless ``--debug``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import io
import signal
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from svcnet import __version__
from svcnet.api.errors import StatusError
from svcnet.cli.manifests import Failure, load_manifests
from svcnet.util.gcpause import tune_for_large_heaps
from svcnet.util.ipfamily import IP_FAMILIES


class LazyGroup(click.Group):
    """A group whose client commands (``get``, ``apply``, ``dashboard``...) are imported only
    when one of them runs or is listed: they bring the REST client, the printers and the
    dashboard, more than half of the CLI's start-up, which ``svcnet up`` or ``svcnet node``
    (and a ``svcnet get`` the dashboard) do not need."""

    #: Command name -> "module:attribute" of its click command.
    LAZY: ClassVar[dict[str, str]] = {
        **{name: f"svcnet.cli.client_commands:{attr}" for name, attr in (
            ("apply", "apply"), ("get", "get"), ("delete", "delete"),
            ("describe", "describe"), ("exec", "exec_"), ("logs", "logs"),
            ("explain", "explain"))},
        "dashboard": "svcnet.cli.dashboard:dashboard",
        "top": "svcnet.cli.dashboard:top",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.LAZY.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command) and command.name == cmd_name, target
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="svcnet")
@click.option("--debug", is_flag=True, help="Show tracebacks on failure.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """svcnet: Kubernetes Service networking, for real."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.option("-f", "--filename", "files", multiple=True, required=True,
              type=click.Path(path_type=Path, allow_dash=True),
              help="Manifest file (YAML or JSON, multi-document); '-' reads stdin.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Unknown fields are errors (kubectl's fieldValidation=Strict).")
def validate(files: tuple[Path, ...], strict: bool) -> None:
    """Check manifests offline with Kubernetes' decoding, defaulting and validation.

    Prints what a Kubernetes API server would answer for each object, in kubectl's words,
    without contacting any server. Allocation-time checks (is a requested ClusterIP or
    NodePort free?) need a server and are not made here.
    """
    from svcnet.api.kinds import check_object  # every kind's validation: imported here only
    from svcnet.api.schema import decode, strict_error

    failed = 0
    for path in files:
        for obj in load_manifests(path):
            kind = str(obj.get("kind", ""))
            name = str((obj.get("metadata") or {}).get("name", ""))
            try:
                decoded = decode(obj, api_version=str(obj.get("apiVersion", "")), kind=kind)
                if strict and decoded.unknown_fields:
                    raise strict_error(decoded.unknown_fields)
                check_object(decoded.obj)
            except StatusError as e:
                failed += 1
                prefix = "The " if e.reason == "Invalid" else "Error from server "
                if e.reason != "Invalid":
                    prefix += f"({e.reason}): "
                click.echo(f"{prefix}{e.message}", err=True)
                continue
            click.echo(f"{kind.lower()}/{name} valid")
    if failed:
        raise Failure(f"{failed} object(s) invalid")


@cli.command()
@click.option("--data-dir", required=True, type=click.Path(path_type=Path),
              help="State directory: database, PKI, tokens, kubeconfig.")
@click.option("--listen", default="127.0.0.1:6443", show_default=True,
              help="HOST:PORT to serve HTTPS on (beyond loopback only when asked).")
@click.option("--store", "store_url", default="",
              help="sqlite:///PATH (default DATA_DIR/state.db), memory://, "
                   "etcd://HOST:PORT[,HOST:PORT...]/PREFIX.")
@click.option("--etcd-cafile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TLS towards an etcd:// store: the CA of the members' certificates "
                   "(default: the system's roots).")
@click.option("--etcd-certfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Client certificate for etcd (with --etcd-keyfile).")
@click.option("--etcd-keyfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Key of --etcd-certfile.")
@click.option("--service-cidr", "service_cidrs", multiple=True, default=("10.96.0.0/12",),
              show_default=True,
              help="Service CIDR, or an IPv4,IPv6 pair (primary first) for dual-stack "
                   "Services, as kube-apiserver's --service-cluster-ip-range.")
@click.option("--node-port-range", default="30000-32767", show_default=True)
@click.option("--lb-pool", "lb_pools", multiple=True,
              help="LoadBalancer pool: [NAME=]A-B or CIDR, comma-separated (repeatable).")
@click.option("--advertise-address", default="",
              help="Address the kubernetes Service's endpoints point at (default: listen host).")
@click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
              help="Pod network, or an IPv4,IPv6 pair for dual-stack; each node gets a /24 "
                   "of an IPv4 one and a /64 of an IPv6 one.")
@click.option("--node-monitor-grace-period", "node_grace", default=40.0, show_default=True,
              type=float, help="Seconds without a heartbeat before a node is NotReady.")
@click.option("--horizontal-pod-autoscaler-sync-period", "hpa_sync_period", default=15.0,
              show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between two looks of the autoscaler at each HPA.")
@click.option("--horizontal-pod-autoscaler-downscale-stabilization", "hpa_downscale",
              default=300.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds of recommendations an HPA's scale-down waits to agree.")
@click.option("--resource-quota-sync-period", "quota_sync_period", default=300.0,
              show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between two recalculations of each ResourceQuota's usage.")
@click.option("--read-header-timeout", default=32.0, show_default=True,
              type=click.FloatRange(min=0.1),
              help="Seconds a connection may take to send a request head, or stay idle.")
@click.option("--max-connections", default=1024, show_default=True,
              type=click.IntRange(min=1),
              help="Open connections; over it the longest-waiting idle one is closed.")
@click.option("--leader-elect", type=bool, default=True, show_default=True,
              help="Run the controllers only while holding the kube-system/"
                   "kube-controller-manager Lease (several servers on one store).")
@click.option("--compaction-interval", default=300.0, show_default=True,
              type=click.FloatRange(min=0),
              help="Seconds between compactions of the store's history, which keep at least "
                   "that much of it (kube-apiserver's --etcd-compaction-interval; 0: never).")
@click.option("--metric-resolution", default=15.0, show_default=True,
              type=click.FloatRange(min=0.1),
              help="Seconds between scrapes of the nodes' resource metrics for "
                   "metrics.k8s.io (kubectl top; metrics-server's --metric-resolution).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes serving the API (on more cores): this one and WORKERS-1 API "
                   "workers on the same store and listening socket.")
@click.option("--worker-index", default=0, hidden=True, type=click.IntRange(min=0))
@click.option("--worker-parent", default=0, hidden=True, type=int)
@click.option("--listen-fds", default="", hidden=True)
@click.option("--loopback-fd", default=None, hidden=True, type=int)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def server(data_dir: Path, listen: str, store_url: str, etcd_cafile: Path | None,
           etcd_certfile: Path | None, etcd_keyfile: Path | None,
           service_cidrs: tuple[str, ...],
           node_port_range: str, lb_pools: tuple[str, ...], advertise_address: str,
           cluster_cidr: str, node_grace: float, hpa_sync_period: float,
           hpa_downscale: float, quota_sync_period: float, read_header_timeout: float,
           max_connections: int, leader_elect: bool, compaction_interval: float,
           metric_resolution: float, workers: int, worker_index: int,
           worker_parent: int, listen_fds: str, loopback_fd: int | None,
           verbose: bool) -> None:
    """Run the API server and controllers until SIGTERM/SIGINT.

    Writes DATA_DIR/kubeconfig (https URL, CA, admin token) once it is ready to serve.
    (--worker-index, --worker-parent, --listen-fds and --loopback-fd are how a server starts
    its API workers: not for use by hand.)
    """
    import asyncio
    import logging
    from datetime import timedelta

    from svcnet.apiserver.identity import IdentityConflict
    from svcnet.apiserver.server import DataDirInUse, ServerConfig, run_server
    from svcnet.apiserver.workers import WorkerFailed, die_with_parent
    from svcnet.storage import EtcdTLS

    if worker_index:
        die_with_parent(worker_parent)

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        etcd_tls = EtcdTLS.from_flags(etcd_cafile, etcd_certfile, etcd_keyfile)
        config = ServerConfig(data_dir=data_dir, listen=listen, store_url=store_url,
                              etcd_tls=etcd_tls,
                              service_cidrs=service_cidrs, node_port_range=node_port_range,
                              lb_pools=lb_pools, advertise_address=advertise_address,
                              cluster_cidr=cluster_cidr,
                              node_grace=timedelta(seconds=node_grace),
                              hpa_sync_period=hpa_sync_period,
                              hpa_downscale_stabilization=timedelta(seconds=hpa_downscale),
                              quota_sync_period=quota_sync_period,
                              read_header_timeout=read_header_timeout,
                              max_connections=max_connections, leader_elect=leader_elect,
                              compaction_interval=compaction_interval,
                              metric_resolution=metric_resolution,
                              workers=workers, worker_index=worker_index,
                              listen_fds=[int(fd) for fd in listen_fds.split(",") if fd],
                              loopback_fd=loopback_fd)
    except ValueError as e:
        raise Failure(str(e)) from None
    try:
        config.host_port  # noqa: B018 - validates the address before anything starts
    except ValueError:
        raise Failure(f"--listen {listen!r} must be HOST:PORT") from None
    tune_for_large_heaps()
    # `kill -USR1` prints every thread's stack to stderr, for a server that will not stop
    # (the process's own stderr: not there when embedded with a stderr that has no file).
    if sys.__stderr__ is not None:
        with contextlib.suppress(ValueError, io.UnsupportedOperation):
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    try:
        asyncio.run(run_server(config))
    except OSError as e:
        raise Failure(f"cannot serve on {listen}: {e.strerror or e}") from None
    except (ValueError, DataDirInUse, IdentityConflict, WorkerFailed) as e:
        raise Failure(str(e)) from None


@cli.command(name="etcd-certs")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--member", "members", multiple=True, required=True, metavar="NAME=HOST[,HOST]",
              help="An etcd member and the addresses (or names) it is reached at "
                   "(repeatable).")
def etcd_certs(out_dir: Path, members: tuple[str, ...]) -> None:
    """Write an etcd cluster's TLS material into OUT_DIR: its CA, each member's server and
    peer certificates (OUT_DIR/NAME/), and the API servers' client certificate. Files that
    exist are kept, so a member can be added later (docs/HA.md, "etcd over TLS")."""
    from svcnet.apiserver.certs import EtcdMember, ensure_etcd_pki

    try:
        parsed = [EtcdMember.parse(m) for m in members]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--member") from None
    for path in ensure_etcd_pki(out_dir, parsed):
        click.echo(f"wrote {path}")



def _node_labels(text: str) -> dict[str, str]:
    """``--node-labels``: ``k=v,k2=v2``, each key a qualified name, each value a label value."""
    from svcnet.api.names import is_qualified_name, is_valid_label_value

    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        errors = is_qualified_name(key) + is_valid_label_value(value) if sep else [
            "expected KEY=VALUE"]
        if errors:
            raise click.BadParameter(f"{item!r}: {'; '.join(errors)}",
                                     param_hint="--node-labels")
        labels[key] = value
    return labels


_AGENT_OPTIONS = [
    click.option("--cluster", default="svcnet", show_default=True,
                 help="Cluster name (namespaces and links are named svcnet-<tag>-...)."),
    click.option("--node-index", default=1, show_default=True, type=click.IntRange(1, 250),
                 help="This node's number on this machine's netns names (svcnet-<tag>-n<index>)."),
    click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
                 help="The cluster's pod network: traffic from it is from a pod (kube-proxy's "
                      "--cluster-cidr); IPV4,IPV6 for dual stack (an ip6 table too)."),
    click.option("--cluster-dns", multiple=True, help="Nameserver IP for pods' resolv.conf."),
    click.option("--ip-family", type=click.Choice(IP_FAMILIES), default="dual",
                 show_default=True,
                 help="Which of --node-ip's and --pod-cidr's addresses the API sees, the primary "
                      "first: dual (all given, IPv4 first), ipv4, or ipv6 (an IPv6 single-stack "
                      "node: the IPv4 ones stay node-internal)."),
    click.option("--resolv-conf", default="/etc/resolv.conf", show_default=True,
                 help="The node's resolv.conf: pods with dnsPolicy Default get its settings, "
                      "ClusterFirst pods its search domains (the kubelet's flag); '' for none."),
    click.option("--no-proxy", is_flag=True, help="Do not program the service data plane."),
    click.option("--no-network-policy", is_flag=True,
                 help="Do not enforce NetworkPolicies on this node (they are enforced along "
                      "with the service data plane otherwise)."),
    click.option("--no-traffic-counters", is_flag=True,
                 help="Do not count connections per Service endpoint in the data plane (the "
                      "counts svcnet dashboard and svcnet top services show)."),
    click.option("--announce-lb-ips", is_flag=True,
                 help="Answer ARP for LoadBalancer IPs on the uplink (the interface holding "
                      "--node-ip) when elected."),
    click.option("--health-port", default=0, show_default=True,
                 help="Serve /healthz and /metrics on NODE_IP:PORT, in the node's network "
                      "namespace unless NODE_IP is loopback (0: off)."),
    click.option("--port", "server_port", default=10250, show_default=True,
                 type=click.IntRange(0, 65535), help="The node server's port on --node-ip."),
    click.option("--container-runtime-endpoint", default="",
                 help="containerd's CRI socket (unix:///PATH): pods run their images there, "
                      "except those of RuntimeClass `process`. Default: the process runtime "
                      "only."),
    click.option("--cni-conf-dir", type=click.Path(path_type=Path), default=None,
                 help="Where to write the pod network's CNI conflist once the pod CIDR is "
                      "known (the directory the runtime reads)."),
    click.option("--node-labels", default="", metavar="KEY=VALUE,...",
                 help="Labels to add when registering the Node (kubelet's flag), e.g. "
                      "topology.kubernetes.io/zone=a."),
    click.option("-v", "--verbose", is_flag=True, help="Log at INFO level."),
]


def _agent_options(f: Any) -> Any:
    """The options ``svcnet node`` and ``svcnet join`` share (one home for both)."""
    for option in reversed(_AGENT_OPTIONS):
        f = option(f)
    return f


def _run_agent(opts: dict[str, Any], **fields: Any) -> None:
    """Build the agent's configuration from the shared options and ``fields``; run it."""
    import asyncio
    import logging
    import os

    from svcnet.node.agent import AgentConfig, run_agent

    logging.basicConfig(level=logging.INFO if opts["verbose"] else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    labels = _node_labels(opts["node_labels"])
    if os.geteuid() != 0:
        raise Failure("the node agent needs root (it creates network namespaces)")
    fields["node_ip"], _, fields["node_ip6"] = str(fields["node_ip"]).partition(",")
    config = AgentConfig(cluster=opts["cluster"], node_index=opts["node_index"],
                         cluster_dns=opts["cluster_dns"], ip_family=opts["ip_family"],
                         announce_lb_ips=opts["announce_lb_ips"],
                         resolv_conf=Path(opts["resolv_conf"]) if opts["resolv_conf"] else None,
                         health_port=opts["health_port"], server_port=opts["server_port"],
                         container_runtime_endpoint=opts["container_runtime_endpoint"] or None,
                         cni_conf_dir=opts["cni_conf_dir"], labels=labels,
                         network_policy=not opts["no_network_policy"], **fields)
    proxy_factory = None
    if not opts["no_proxy"]:
        from svcnet.node.runner import NodeConfig
        from svcnet.proxy.service import NodeProxy

        def proxy_factory(nc: NodeConfig) -> NodeProxy:
            cidrs = tuple(c.strip() for c in opts["cluster_cidr"].split(",") if c.strip())
            return NodeProxy(nc.node_netns, node_ip=nc.host_ip, cluster_cidrs=cidrs,
                             traffic_counters=not opts["no_traffic_counters"])

    tune_for_large_heaps()
    asyncio.run(run_agent(config, proxy_factory=proxy_factory))


@cli.command()
@click.option("--kubeconfig", required=True, type=click.Path(path_type=Path, exists=True),
              help="Kubeconfig with this node's credentials.")
@click.option("--name", "node_name", required=True, help="Node name to register.")
@click.option("--node-ip", required=True,
              help="The node's address (status.addresses), or an IPv4,IPv6 pair (dual stack: "
                   "NodePorts on both).")
@click.option("--pod-cidr", default="",
              help="Ask for this pod CIDR, or an IPv4,IPv6 pair (dual stack: pods get an IPv6 "
                   "address too); default: the control plane assigns them.")
@click.option("--state-dir", required=True, type=click.Path(path_type=Path),
              help="Where pod state, IPAM and container logs live.")
@click.option("--tls-cert-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Serving certificate of the node server (logs, exec, port-forward), "
                   "signed by the cluster CA; without it there is no node server.")
@click.option("--tls-private-key-file",
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The key of --tls-cert-file.")
@click.option("--pod-network-mode", type=click.Choice(["routes", "vxlan"]), default=None,
              help="Keep routes (or a VXLAN overlay) to the other nodes' pod CIDRs in the "
                   "node's namespace, from the Node objects. Default: none (routes are "
                   "someone else's).")
@_agent_options
def node(kubeconfig: Path, node_name: str, node_ip: str, pod_cidr: str, state_dir: Path,
         tls_cert_file: Path | None, tls_private_key_file: Path | None,
         pod_network_mode: str | None, **opts: Any) -> None:
    """Run the node agent: register the Node, run its pods, program its data plane."""
    _run_agent(opts, kubeconfig=kubeconfig, node_name=node_name, node_ip=node_ip,
               pod_cidr=pod_cidr, state_dir=state_dir, tls_cert_file=tls_cert_file,
               tls_key_file=tls_private_key_file, pod_network_mode=pod_network_mode or "")


@cli.command()
@click.argument("servers", metavar="URL[,URL...]")
@click.option("--token", default="", help="The join token (DATA_DIR/join-token on a server).")
@click.option("--token-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Read the join token from this file.")
@click.option("--node-name", default="", help="Node name (default: this machine's hostname).")
@click.option("--node-ip", default="",
              help="This machine's address on the node network (default: the source address "
                   "of the route to the first server).")
@click.option("--pod-network-mode", type=click.Choice(["routes", "vxlan"]), default="vxlan",
              show_default=True,
              help="How pods reach other machines' pods: routes (machines on one subnet) or "
                   "a VXLAN overlay (any IP network between them).")
@click.option("--state-dir", default=Path("/var/lib/svcnet/node"), show_default=True,
              type=click.Path(path_type=Path), help="Credentials, pod state, IPAM, logs.")
@_agent_options
def join(servers: str, token: str, token_file: Path | None, node_name: str, node_ip: str,
         pod_network_mode: str, state_dir: Path, **opts: Any) -> None:
    """Register THIS machine as a node of the cluster at URL and run its agent.

    Its own network namespace is the node: its interface and address are the node's, pods
    hang off a bridge in it, the Service data plane is programmed in it. Several URLs (the
    cluster's servers) are tried in turn, and the agent fails over between them.
    """
    import asyncio
    import socket

    from svcnet.api.jointokens import TokenFormatError, parse_join_token
    from svcnet.node.join import (
        JoinError,
        NoServerAnswered,
        cached_files,
        join_cluster,
        name_own_netns,
        parse_servers,
        route_source,
    )
    from svcnet.node.names import ClusterNames

    try:
        text = token_file.read_text() if token_file is not None else token
        if not text.strip():
            raise Failure("give the join token with --token or --token-file")
        parsed = parse_join_token(text)
        urls = parse_servers(servers)
        name = node_name or socket.gethostname().lower()
        ip = node_ip or route_source(urls[0])
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            files = asyncio.run(join_cluster(urls, parsed, name, [ip], state_dir))
        except NoServerAnswered as e:
            cached = cached_files(state_dir)
            if cached is None:
                raise
            click.echo(f"warning: {e}; starting with the credentials of the last join",
                       err=True)
            files = cached
        name_own_netns(ClusterNames.for_cluster(opts["cluster"]).node_netns(opts["node_index"]))
    except (JoinError, TokenFormatError) as e:
        raise Failure(str(e)) from None
    click.echo(f"joined {files.server} as node {name} ({ip}); running the agent", err=True)
    _run_agent(opts, kubeconfig=files.kubeconfig, node_name=name, node_ip=ip,
               state_dir=state_dir, tls_cert_file=files.cert, tls_key_file=files.key,
               servers=tuple(u for u in urls if u != files.server),
               pod_network_mode=pod_network_mode)


@cli.command()
@click.option("-f", "--filename", "files", multiple=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Manifests to apply once the cluster is up (repeatable).")
@click.option("--nodes", default=2, show_default=True, type=click.IntRange(1, 100))
@click.option("--name", default="svcnet", show_default=True, help="Cluster name.")
@click.option("--detach", is_flag=True,
              help="Return once everything is ready; leave the cluster running.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for ready.")
@click.option("--no-localhost-nodeports", is_flag=True,
              help="Do not serve NodePorts on 127.0.0.1 of the host.")
@click.option("--node-grace-period", default=40.0, show_default=True,
              type=click.FloatRange(15.0),
              help="Seconds without a heartbeat before a node is NotReady (nodes renew every 10).")
@click.option("--metric-resolution", default=15.0, show_default=True,
              type=click.FloatRange(min=0.1),
              help="Seconds between scrapes of the nodes' resource metrics (kubectl top).")
@click.option("--horizontal-pod-autoscaler-sync-period", "hpa_sync_period", default=15.0,
              show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between the autoscaler's looks at each HPA.")
@click.option("--container-runtime", type=click.Choice(["auto", "containerd", "process"]),
              default="auto", show_default=True,
              help="containerd: one per node, pods run their images (RuntimeClass `process` "
                   "still runs commands on the host); process: every pod runs its command on "
                   "the host; auto: containerd when it is installed.")
@click.option("--registry-mirror", "mirrors", multiple=True, metavar="REGISTRY=URL",
              help="Pull REGISTRY's images (e.g. docker.io) from URL instead "
                   "(e.g. http://127.0.0.1:5000), with no fall-back. Repeatable.")
@click.option("--ip-family", type=click.Choice(IP_FAMILIES), default="ipv4",
              show_default=True,
              help="dual: the node, pod and service networks get an IPv6 twin (unique local "
                   "addresses), nodes and pods an address of each family, and Services may be "
                   "dual-stack (ipFamilyPolicy). ipv6: IPv6 single stack (IPv6 Services, "
                   "ClusterIPs, pod and node addresses, API server and DNS only).")
@click.option("--node-network", metavar="CIDR", default=None,
              help="The node network (a private IPv4 /24 or larger). Default: the first of "
                   "172.20.0.0/24, 172.20.1.0/24, ... that nothing on the machine and no "
                   "other cluster uses. The pod network is the first free of 10.244.0.0/16, "
                   "10.245.0.0/16, ...")
@click.option("--zones", default="", metavar="ZONE,...",
              help="Spread the nodes over these zones: node i gets the label "
                   "topology.kubernetes.io/zone=ZONES[(i-1) % len(ZONES)].")
@click.option("--egress", is_flag=True,
              help="Let pods reach the outside through their node: a default route in each "
                   "node namespace and masquerade to the node's address there (nothing in "
                   "the host's namespace; docs/EGRESS.md). Cluster DNS then forwards other "
                   "names to the host's resolvers.")
@click.option("--egress-gateway", metavar="IP", default=None,
              help="The nodes' default gateway with --egress: an address on the node "
                   "network. Default: the node bridge's address on the host.")
@click.option("--upstream", "upstreams", multiple=True, metavar="ADDR[:PORT]",
              help="A resolver for names outside the cluster (repeatable). Default: with "
                   "--egress the host's /etc/resolv.conf nameservers but loopback stubs "
                   "(127.0.0.53: systemd-resolved's list instead); without, none (SERVFAIL).")
def up(files: tuple[Path, ...], nodes: int, name: str, detach: bool, timeout: float,
       no_localhost_nodeports: bool, node_grace_period: float, metric_resolution: float,
       hpa_sync_period: float, container_runtime: str,
       mirrors: tuple[str, ...], ip_family: str, node_network: str | None, zones: str,
       egress: bool, egress_gateway: str | None, upstreams: tuple[str, ...]) -> None:
    """Bring up a whole local cluster: control plane, nodes, DNS; apply FILEs (needs root)."""
    import asyncio
    import signal

    from svcnet.api.endpointslices import LABEL_TOPOLOGY_ZONE
    from svcnet.cluster.down import down as teardown
    from svcnet.cluster.networks import NetworkError, parse_node_network
    from svcnet.cluster.up import UpError, UpOptions, up as bring_up
    from svcnet.dns.upstreams import explicit_upstreams
    from svcnet.node.containerd import MirrorError, parse_mirror

    try:
        registry_mirrors = dict(parse_mirror(m) for m in mirrors)
    except MirrorError as e:
        raise click.BadParameter(str(e), param_hint="--registry-mirror") from None
    try:
        network = parse_node_network(node_network) if node_network is not None else None
    except NetworkError as e:
        raise Failure(str(e)) from None
    if egress_gateway is not None and not egress:
        raise click.BadParameter("needs --egress", param_hint="--egress-gateway")
    try:
        upstream_list = explicit_upstreams(upstreams).servers
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--upstream") from None
    zone_list = tuple(z.strip() for z in zones.split(",") if z.strip())
    for zone in zone_list:
        _node_labels(f"{LABEL_TOPOLOGY_ZONE}={zone}")  # a label value, or an error
    opts = UpOptions(name=name, nodes=nodes, files=files, detach=detach, timeout=timeout,
                     localhost_nodeports=not no_localhost_nodeports,
                     node_grace=node_grace_period, metric_resolution=metric_resolution,
                     hpa_sync_period=hpa_sync_period, container_runtime=container_runtime,
                     registry_mirrors=registry_mirrors, node_network=network, zones=zone_list,
                     egress=egress, egress_gateway=egress_gateway, upstreams=upstream_list,
                     ip_family=ip_family)
    try:
        text = asyncio.run(bring_up(opts, lambda line: click.echo(line, err=True)))
    except UpError as e:
        raise Failure(str(e)) from None
    click.echo(text)
    if detach:
        return
    click.echo("\nRunning in the foreground; Ctrl-C stops the cluster "
               "(or use --detach next time).", err=True)
    stop = {"now": False}

    def handler(_sig: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop["now"]:
        signal.pause()
    teardown(name)
    click.echo(f"cluster {name!r} stopped and removed", err=True)


@cli.command()
@click.option("--name", default="svcnet", show_default=True, help="Cluster name.")
def down(name: str) -> None:
    """Stop a local cluster and remove every namespace, link, route and file it made."""
    import os

    from svcnet.cluster.down import down as teardown

    if os.geteuid() != 0:
        raise Failure("svcnet down needs root (it deletes network namespaces)")
    report = teardown(name)
    freed = (f"; network {report.network.nodes} and pods {report.network.pods} free again"
             if report.network else "")
    click.echo(f"cluster {name!r} removed: {len(report.processes)} process(es), "
               f"{len(report.namespaces)} namespace(s), {len(report.links)} link(s){freed}")
    if report.foreign_owner:
        click.echo(f"its kernel names belong to the cluster whose state is in "
                   f"{report.foreign_owner}: left alone", err=True)


@cli.command()
@click.option("--name", default="svcnet", show_default=True, help="Cluster name.")
def status(name: str) -> None:
    """Show each process of a local cluster: state, pid, restarts, uptime, last exit.

    The API server, node agents and NodePort forwarder (restarted by the cluster's
    supervisor), then the cluster DNS pod (restarted by its node agent). Exit code 0 when the
    supervisor and all of them run, 1 otherwise.
    """
    from svcnet.cluster.supervise import cluster_status

    lines, problem = cluster_status(name)
    for line in lines:
        click.echo(line)
    if problem:
        raise Failure(problem)


@cli.command(name="_supervise", hidden=True)
@click.option("--state-dir", required=True, type=click.Path(path_type=Path, file_okay=False))
def supervise(state_dir: Path) -> None:
    """Run and restart a local cluster's processes (started by svcnet up)."""
    from svcnet.cluster.supervise import run_supervisor

    run_supervisor(state_dir)


@cli.command(name="_forward-nodeports", hidden=True)
@click.option("--kubeconfig", required=True)
@click.option("--target", required=True, help="Node address to forward to.")
def forward_nodeports(kubeconfig: str, target: str) -> None:
    """Serve TCP NodePorts on 127.0.0.1 (run by svcnet up)."""
    import asyncio

    from svcnet.cluster.forwarder import run_forwarder

    asyncio.run(run_forwarder(kubeconfig, target))


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(1 if isinstance(e, Failure) else 2)
    except Exception as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
