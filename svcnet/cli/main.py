"""The ``svcnet`` command.

Exit codes (DESIGN §2): 0 success; 1 failure with a one-line reason on stderr, no traceback
unless ``--debug``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from svcnet import __version__
from svcnet.api.errors import StatusError
from svcnet.api.kinds import check_object
from svcnet.api.schema import decode, strict_error
from svcnet.cli.client_commands import apply, delete, describe, exec_, explain, get, logs
from svcnet.cli.manifests import Failure, load_manifests


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--service-cidr", "service_cidrs", multiple=True, default=("10.96.0.0/12",),
              show_default=True, help="Service CIDR (repeat for dual-stack or extra ranges).")
@click.option("--node-port-range", default="30000-32767", show_default=True)
@click.option("--lb-pool", "lb_pools", multiple=True,
              help="LoadBalancer pool: [NAME=]A-B or CIDR, comma-separated (repeatable).")
@click.option("--advertise-address", default="",
              help="Address the kubernetes Service's endpoints point at (default: listen host).")
@click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
              help="Pod network; each node gets a /24 of it.")
@click.option("--node-monitor-grace-period", "node_grace", default=40.0, show_default=True,
              type=float, help="Seconds without a heartbeat before a node is NotReady.")
@click.option("--read-header-timeout", default=32.0, show_default=True,
              type=click.FloatRange(min=0.1),
              help="Seconds a connection may take to send a request head, or stay idle.")
@click.option("--max-connections", default=1024, show_default=True,
              type=click.IntRange(min=1),
              help="Open connections; over it the longest-waiting idle one is closed.")
@click.option("--leader-elect", type=bool, default=True, show_default=True,
              help="Run the controllers only while holding the kube-system/"
                   "kube-controller-manager Lease (several servers on one store).")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def server(data_dir: Path, listen: str, store_url: str, service_cidrs: tuple[str, ...],
           node_port_range: str, lb_pools: tuple[str, ...], advertise_address: str,
           cluster_cidr: str, node_grace: float, read_header_timeout: float,
           max_connections: int, leader_elect: bool, verbose: bool) -> None:
    """Run the API server and controllers until SIGTERM/SIGINT.

    Writes DATA_DIR/kubeconfig (https URL, CA, admin token) once it is ready to serve.
    """
    import asyncio
    import logging
    from datetime import timedelta

    from svcnet.apiserver.identity import IdentityConflict
    from svcnet.apiserver.server import DataDirInUse, ServerConfig, run_server

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(data_dir=data_dir, listen=listen, store_url=store_url,
                          service_cidrs=service_cidrs, node_port_range=node_port_range,
                          lb_pools=lb_pools, advertise_address=advertise_address,
                          cluster_cidr=cluster_cidr, node_grace=timedelta(seconds=node_grace),
                          read_header_timeout=read_header_timeout,
                          max_connections=max_connections, leader_elect=leader_elect)
    try:
        config.host_port  # noqa: B018 - validates the address before anything starts
    except ValueError:
        raise Failure(f"--listen {listen!r} must be HOST:PORT") from None
    try:
        asyncio.run(run_server(config))
    except OSError as e:
        raise Failure(f"cannot serve on {listen}: {e.strerror or e}") from None
    except (ValueError, DataDirInUse, IdentityConflict) as e:
        raise Failure(str(e)) from None


cli.add_command(apply)
cli.add_command(get)
cli.add_command(delete)
cli.add_command(describe)
cli.add_command(exec_)
cli.add_command(logs)
cli.add_command(explain)


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


@cli.command()
@click.option("--kubeconfig", required=True, type=click.Path(path_type=Path, exists=True),
              help="Kubeconfig with this node's credentials.")
@click.option("--name", "node_name", required=True, help="Node name to register.")
@click.option("--cluster", default="svcnet", show_default=True,
              help="Cluster name (namespaces and links are named svcnet-<tag>-...).")
@click.option("--node-index", default=1, show_default=True, type=click.IntRange(1, 250),
              help="This node's number in the cluster (its netns is svcnet-<tag>-n<index>).")
@click.option("--node-ip", required=True, help="The node's address (status.addresses).")
@click.option("--pod-cidr", default="",
              help="Ask for this pod CIDR (default: the control plane assigns one).")
@click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
              help="The cluster's pod network: traffic from it is from a pod (kube-proxy's "
                   "--cluster-cidr).")
@click.option("--state-dir", required=True, type=click.Path(path_type=Path),
              help="Where pod state, IPAM and container logs live.")
@click.option("--cluster-dns", multiple=True, help="Nameserver IP for pods' resolv.conf.")
@click.option("--no-proxy", is_flag=True, help="Do not program the service data plane.")
@click.option("--announce-lb-ips", is_flag=True,
              help="Answer ARP for LoadBalancer IPs on the uplink (eth0) when elected.")
@click.option("--health-port", default=0, show_default=True,
              help="Serve /healthz and /metrics on NODE_IP:PORT, in the node's network "
                   "namespace unless NODE_IP is loopback (0: off).")
@click.option("--tls-cert-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Serving certificate of the node server (logs, exec, port-forward), "
                   "signed by the cluster CA; without it there is no node server.")
@click.option("--tls-private-key-file",
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The key of --tls-cert-file.")
@click.option("--port", "server_port", default=10250, show_default=True,
              type=click.IntRange(0, 65535), help="The node server's port on --node-ip.")
@click.option("--container-runtime-endpoint", default="",
              help="containerd's CRI socket (unix:///PATH): pods run their images there, "
                   "except those of RuntimeClass `process`. Default: the process runtime only.")
@click.option("--cni-conf-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the pod network's CNI conflist once the pod CIDR is "
                   "known (the directory the runtime reads).")
@click.option("--node-labels", default="", metavar="KEY=VALUE,...",
              help="Labels to add when registering the Node (kubelet's flag), e.g. "
                   "topology.kubernetes.io/zone=a.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def node(kubeconfig: Path, node_name: str, cluster: str, node_index: int, node_ip: str,
         pod_cidr: str, cluster_cidr: str, state_dir: Path, cluster_dns: tuple[str, ...],
         no_proxy: bool, announce_lb_ips: bool, health_port: int, tls_cert_file: Path | None,
         tls_private_key_file: Path | None, server_port: int, container_runtime_endpoint: str,
         cni_conf_dir: Path | None, node_labels: str, verbose: bool) -> None:
    """Run the node agent: register the Node, run its pods, program its data plane."""
    import asyncio
    import logging
    import os

    from svcnet.node.agent import AgentConfig, run_agent

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    labels = _node_labels(node_labels)
    if os.geteuid() != 0:
        raise Failure("svcnet node needs root (it creates network namespaces)")
    config = AgentConfig(kubeconfig=kubeconfig, node_name=node_name, cluster=cluster,
                         node_index=node_index, node_ip=node_ip, pod_cidr=pod_cidr,
                         state_dir=state_dir, cluster_dns=cluster_dns,
                         announce_lb_ips=announce_lb_ips, health_port=health_port,
                         tls_cert_file=tls_cert_file, tls_key_file=tls_private_key_file,
                         server_port=server_port,
                         container_runtime_endpoint=container_runtime_endpoint or None,
                         cni_conf_dir=cni_conf_dir, labels=labels)
    proxy_factory = None
    if not no_proxy:
        from svcnet.node.runner import NodeConfig
        from svcnet.proxy.service import NodeProxy

        def proxy_factory(nc: NodeConfig) -> NodeProxy:
            return NodeProxy(nc.node_netns, node_ip=node_ip, cluster_cidrs=(cluster_cidr,))

    asyncio.run(run_agent(config, proxy_factory=proxy_factory))


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
@click.option("--container-runtime", type=click.Choice(["auto", "containerd", "process"]),
              default="auto", show_default=True,
              help="containerd: one per node, pods run their images (RuntimeClass `process` "
                   "still runs commands on the host); process: every pod runs its command on "
                   "the host; auto: containerd when it is installed.")
@click.option("--registry-mirror", "mirrors", multiple=True, metavar="REGISTRY=URL",
              help="Pull REGISTRY's images (e.g. docker.io) from URL instead "
                   "(e.g. http://127.0.0.1:5000), with no fall-back. Repeatable.")
@click.option("--node-network", metavar="CIDR", default=None,
              help="The node network (a private IPv4 /24 or larger). Default: the first of "
                   "172.20.0.0/24, 172.20.1.0/24, ... that nothing on the machine and no "
                   "other cluster uses. The pod network is the first free of 10.244.0.0/16, "
                   "10.245.0.0/16, ...")
@click.option("--zones", default="", metavar="ZONE,...",
              help="Spread the nodes over these zones: node i gets the label "
                   "topology.kubernetes.io/zone=ZONES[(i-1) % len(ZONES)].")
def up(files: tuple[Path, ...], nodes: int, name: str, detach: bool, timeout: float,
       no_localhost_nodeports: bool, node_grace_period: float, container_runtime: str,
       mirrors: tuple[str, ...], node_network: str | None, zones: str) -> None:
    """Bring up a whole local cluster: control plane, nodes, DNS; apply FILEs (needs root)."""
    import asyncio
    import signal

    from svcnet.api.endpointslices import LABEL_TOPOLOGY_ZONE
    from svcnet.cluster.down import down as teardown
    from svcnet.cluster.networks import NetworkError, parse_node_network
    from svcnet.cluster.up import UpError, UpOptions, up as bring_up
    from svcnet.node.containerd import MirrorError, parse_mirror

    try:
        registry_mirrors = dict(parse_mirror(m) for m in mirrors)
    except MirrorError as e:
        raise click.BadParameter(str(e), param_hint="--registry-mirror") from None
    try:
        network = parse_node_network(node_network) if node_network is not None else None
    except NetworkError as e:
        raise Failure(str(e)) from None
    zone_list = tuple(z.strip() for z in zones.split(",") if z.strip())
    for zone in zone_list:
        _node_labels(f"{LABEL_TOPOLOGY_ZONE}={zone}")  # a label value, or an error
    opts = UpOptions(name=name, nodes=nodes, files=files, detach=detach, timeout=timeout,
                     localhost_nodeports=not no_localhost_nodeports,
                     node_grace=node_grace_period, container_runtime=container_runtime,
                     registry_mirrors=registry_mirrors, node_network=network, zones=zone_list)
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
