"""TLS towards etcd, as the server's flags give it; apart from storage/etcd.py, which is only
imported (with grpc, slow to import) when an etcd store is opened."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """TLS towards etcd: kube-apiserver's ``--etcd-cafile`` (the CA that signed the members'
    certificates; none: the system's roots), ``--etcd-certfile`` and ``--etcd-keyfile`` (the
    client certificate an etcd with ``--client-cert-auth`` requires; both or neither)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("--etcd-certfile and --etcd-keyfile go together")

    @classmethod
    def from_flags(cls, ca_file: Path | None, cert_file: Path | None,
                   key_file: Path | None) -> EtcdTLS | None:
        """The TLS of the three flags; None when none is given (plain gRPC)."""
        if ca_file is None and cert_file is None and key_file is None:
            return None
        return cls(ca_file, cert_file, key_file)
