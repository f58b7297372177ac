"""`svcnet etcd-certs` and the server's etcd TLS flags, before anything is served.

That the certificates work is shown by real etcd members using them
(tests/contract/test_etcd_tls.py, tests/multimachine/test_ha_machines.py); here: what they
name and allow, that a second run keeps what exists, and the refusals."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from svcnet.apiserver.certs import ETCD_CLIENT_CN
from svcnet.apiserver.server import ServerConfig, worker_argv
from svcnet.cli.main import cli
from svcnet.storage import EtcdTLS


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ({str(v) for v in san.get_values_for_type(x509.DNSName)}
            | {str(v) for v in san.get_values_for_type(x509.IPAddress)})


def usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_etcd_certs_writes_a_ca_member_and_client_certificates(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = CliRunner().invoke(cli, ["etcd-certs", str(out), "--member", "m1=10.0.0.1",
                                      "--member", "m2=10.0.0.2,m2.lan"])
    assert result.exit_code == 0, result.output
    ca = load(out / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for member, hosts in (("m1", {"10.0.0.1"}), ("m2", {"10.0.0.2", "m2.lan"})):
        for kind in ("server", "peer"):
            cert = load(out / member / f"{kind}.crt")
            cert.verify_directly_issued_by(ca)
            # Its own hosts and the local names, not the other member's.
            assert names(cert) == hosts | {"localhost", "127.0.0.1", "::1"}
            assert usages(cert) == {ExtendedKeyUsageOID.SERVER_AUTH,
                                    ExtendedKeyUsageOID.CLIENT_AUTH}
            key = out / member / f"{kind}.key"
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
    client = load(out / "apiserver-etcd-client.crt")
    client.verify_directly_issued_by(ca)
    assert client.subject.rfc4514_string() == f"CN={ETCD_CLIENT_CN}"
    assert usages(client) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600

    # Run again with a member more: what exists is kept, the new member is signed by the
    # same CA.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = CliRunner().invoke(cli, ["etcd-certs", str(out), "--member", "m1=10.0.0.1",
                                     "--member", "m3=10.0.0.3"])
    assert again.exit_code == 0, again.output
    assert again.output.strip().splitlines() == [f"wrote {out}/m3/server.crt",
                                                 f"wrote {out}/m3/peer.crt"]
    assert all(p.read_bytes() == data for p, data in before.items())
    load(out / "m3" / "server.crt").verify_directly_issued_by(ca)


def test_etcd_certs_refuses_a_malformed_member(tmp_path: Path) -> None:
    for member in ("m1", "=10.0.0.1", "m1=", "../x=10.0.0.1"):
        result = CliRunner().invoke(cli, ["etcd-certs", str(tmp_path / "p"), "--member", member])
        assert result.exit_code == 2, result.output
        assert "expected NAME=HOST[,HOST...]" in result.output
    assert not (tmp_path / "p").exists()


def test_server_refuses_etcd_tls_flags_without_an_etcd_store(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    result = CliRunner().invoke(cli, ["server", "--data-dir", str(tmp_path / "d"),
                                      "--etcd-cafile", str(ca)])
    assert result.exit_code == 1, result.output
    assert "are for an etcd:// --store" in result.output
    result = CliRunner().invoke(cli, ["server", "--data-dir", str(tmp_path / "d"),
                                      "--store", "etcd://127.0.0.1:2379/x",
                                      "--etcd-certfile", str(ca)])
    assert result.exit_code == 1, result.output
    assert "--etcd-certfile and --etcd-keyfile go together" in result.output


def test_api_workers_get_the_servers_etcd_tls(tmp_path: Path) -> None:
    tls = EtcdTLS(Path("ca.crt"), tmp_path / "c.crt", tmp_path / "c.key")
    config = ServerConfig(data_dir=tmp_path, store_url="etcd://127.0.0.1:2379/x", etcd_tls=tls,
                          workers=2)
    argv = worker_argv(config, 1, [3], 4)
    flags = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert flags["--etcd-cafile"] == str(Path("ca.crt").resolve())  # workers share no cwd
    assert (flags["--etcd-certfile"], flags["--etcd-keyfile"]) == (
        str(tmp_path / "c.crt"), str(tmp_path / "c.key"))
    assert "--etcd-cafile" not in worker_argv(
        ServerConfig(data_dir=tmp_path, store_url="etcd://127.0.0.1:2379/x", workers=2),
        1, [3], 4)
