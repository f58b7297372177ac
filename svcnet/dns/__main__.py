"""``python -m svcnet.dns``: serve cluster DNS from an API server (see :func:`run_dns`).

Example, as the server behind ``kube-system/kube-dns`` (10.96.0.10)::

    python -m svcnet.dns --kubeconfig /var/lib/svcnet/kubeconfig --listen 0.0.0.0:53 \\
        --zone cluster.local --resolv-conf /etc/resolv.conf
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from svcnet.dns.records import DEFAULT_TTL, DEFAULT_ZONE
from svcnet.dns.service import run_dns
from svcnet.dns.upstreams import explicit_upstreams


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m svcnet.dns",
        description="Serve cluster DNS (Kubernetes DNS spec 1.0.1) from an API server.")
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig of the API server to watch (default: $KUBECONFIG, "
                        "~/.kube/config)")
    p.add_argument("--listen", default="0.0.0.0:53", help="host:port for UDP and TCP")
    p.add_argument("--zone", default=DEFAULT_ZONE, help="the cluster domain")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help="upstream resolvers for other names; '' for none (SERVFAIL)")
    p.add_argument("--upstream", action="append", default=[], metavar="ADDR[:PORT]",
                   help="an upstream resolver for other names (repeatable; replaces "
                        "--resolv-conf)")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="TTL of cluster records")
    p.add_argument("--no-pods", action="store_true",
                   help="do not answer <dashed-ip>.<ns>.pod.<zone> names")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    try:
        upstreams = list(explicit_upstreams(args.upstream).servers) if args.upstream else None
    except ValueError as e:
        p.error(f"--upstream {e}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_dns(args.kubeconfig, args.listen, args.zone, args.resolv_conf or None,
                        ttl=args.ttl, pods=not args.no_pods, upstreams=upstreams))


if __name__ == "__main__":
    main()
