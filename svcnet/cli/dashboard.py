"""``svcnet dashboard`` (the live page, :mod:`svcnet.dashboard`) and ``svcnet top services``
(the same traffic rates in the terminal)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import click

from svcnet.cli.session import _Api, _client_options, _run, kubeconfig_path
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import NODES, SERVICES
from svcnet.dashboard.server import DEFAULT_LISTEN, node_sample, parse_listen, serve, token_url
from svcnet.dashboard.traffic import RateTracker, frontend_owners, service_rates

__all__ = ["dashboard", "top"]


@click.command()
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Kubeconfig file (default: $KUBECONFIG, else ~/.svcnet/svcnet/kubeconfig).")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Loopback address to serve on (port 0: any free port).")
def dashboard(kubeconfig: Path | None, listen: str) -> None:
    """Serve a live picture of the cluster's Services on loopback.

    The page needs a token the API server accepts (the URL printed with ?token= logs in with
    the kubeconfig's own); the data comes from the kubeconfig's credentials.
    """
    try:
        host, port = parse_listen(listen)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    config = load_kubeconfig(kubeconfig_path(kubeconfig))

    def announce(url: str) -> None:
        click.echo(f"svcnet dashboard serving {url}", nl=True)
        if config.token:
            click.echo(f"open (logs in with the kubeconfig's token): {token_url(url, config)}")
        else:
            click.echo("log in with a bearer token the API server accepts")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, host, port, announce=announce, stop=stop)

    asyncio.run(main())


@click.group()
def top() -> None:
    """Traffic rates from the data plane."""


@top.command(name="services")
@click.option("--interval", default=2.0, show_default=True,
              help="Seconds between the two counter samples.")
@click.option("-e", "--endpoints", "show_endpoints", is_flag=True,
              help="One line per endpoint too.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@_client_options
@click.pass_context
def top_services(ctx: click.Context, interval: float, show_endpoints: bool,
                 all_namespaces: bool, kubeconfig: Path | None, namespace: str | None) -> None:
    """New connections per second per Service (and endpoint), from each node's counters."""

    async def work(api: _Api) -> bool:
        nodes = (await api.client.list_all(NODES)).items
        services = (await api.client.list_all(SERVICES)).items
        names = [str(n["metadata"]["name"]) for n in nodes]
        tracker = RateTracker()
        for round_ in range(2):
            if round_:
                await asyncio.sleep(interval)
            samples = await asyncio.gather(*(node_sample(api.client, n) for n in names))
            now = time.monotonic()
            for name, sample in zip(names, samples, strict=True):
                if sample is not None:
                    tracker.update(name, now, sample)
        if not tracker.rates() and not any(s is not None for s in samples):
            click.echo("error: no node publishes traffic counters", err=True)
            return False
        rates = service_rates(tracker.rates(), frontend_owners(services, nodes))
        click.echo(f"{'NAMESPACE':<16}{'NAME':<28}{'TYPE':<14}{'CONN/S':>10}")
        for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"],
                                                   s["metadata"]["name"])):
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            if not all_namespaces and ns != api.namespace:
                continue
            key = f"{ns}/{name}"
            kind = (svc.get("spec") or {}).get("type", "ClusterIP")
            click.echo(f"{ns:<16}{name:<28}{kind:<14}{rates.get(key, 0.0):>10.1f}")
            if show_endpoints:
                for ep_key in sorted(k for k in rates if k.startswith(f"{key}|")):
                    click.echo(f"{'':<16}  -> {ep_key.split('|', 1)[1]:<36}"
                               f"{rates[ep_key]:>10.1f}")
        return True

    _run(ctx, kubeconfig, namespace, work)
