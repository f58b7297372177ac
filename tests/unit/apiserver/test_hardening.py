"""Pure parts of the server's hardening: the connection gate, health rendering, metric labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client import generate_latest

from svcnet.api.errors import StatusError
from svcnet.apiserver.admission import node_restriction
from svcnet.apiserver.auth import TokenFile, User
from svcnet.apiserver.certs import ensure_tls
from svcnet.apiserver.connections import ConnectionGate
from svcnet.apiserver.health import Result, render
from svcnet.apiserver.server import Metrics
from svcnet.registry.generic import AdmissionAttributes


class Conn:
    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline  # None: serving a request
        self.closed = False

    def idle_deadline(self) -> float | None:
        return self.deadline

    def force_close(self) -> None:
        self.closed = True


def test_gate_admits_up_to_its_limit() -> None:
    gate = ConnectionGate(2)
    a, b = Conn(1.0), Conn(2.0)
    assert gate.admit(a) and gate.admit(b)
    assert len(gate) == 2 and not a.closed and not b.closed


def test_gate_over_the_limit_evicts_the_connection_waiting_longest() -> None:
    gate = ConnectionGate(3)
    # Admitted first, but between two requests: it has hardly waited (deadline far away).
    client, busy, loris = Conn(100.0), Conn(None), Conn(40.0)
    for c in (client, busy, loris):
        assert gate.admit(c)
    new = Conn(101.0)
    assert gate.admit(new)
    assert loris.closed and not busy.closed and not client.closed
    assert (len(gate), gate.evicted, gate.refused) == (3, 1, 0)


def test_gate_refuses_when_every_connection_is_busy() -> None:
    gate = ConnectionGate(2)
    busy = [Conn(None), Conn(None)]
    for c in busy:
        gate.admit(c)
    assert not gate.admit(Conn(5.0))
    assert not any(c.closed for c in busy)
    assert (len(gate), gate.refused) == (2, 1)
    gate.closed(busy[0])
    assert gate.admit(Conn(5.0))


def test_gate_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError):
        ConnectionGate(0)


@pytest.mark.parametrize(
    ("results", "verbose", "expected"),
    [
        pytest.param([Result("ping", None), Result("etcd", None)], False, (200, "ok"),
                     id="ok"),
        pytest.param([Result("ping", None), Result("etcd", None)], True,
                     (200, "[+]ping ok\n[+]etcd ok\nreadyz check passed\n"), id="verbose"),
        pytest.param([Result("ping", None), Result("etcd", "connection refused")], False,
                     (500, "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n"),
                     id="failed-lists-checks-withholding-reasons"),
        pytest.param([Result("ping", None), Result("etcd", None, excluded=True)], True,
                     (200, "[+]ping ok\n[+]etcd excluded: ok\nreadyz check passed\n"),
                     id="excluded"),
    ],
)
def test_health_render(results: list[Result], verbose: bool, expected: tuple[int, str]
                       ) -> None:
    assert render("readyz", results, verbose=verbose) == expected


def test_metric_labels_come_from_bounded_sets() -> None:
    metrics = Metrics(resources=frozenset({"services"}))
    metrics.observe("list", "services", 200, 0.01)
    metrics.observe("get", "x12345", 401, 0.01)
    metrics.observe("brew", "", 400, 0.01)
    text = generate_latest(metrics.registry).decode()
    assert 'resource="services",verb="list"' in text
    assert 'resource="other",verb="get"' in text
    assert 'resource="",verb="other"' in text
    assert "x12345" not in text and "brew" not in text


def test_tokens_are_held_and_looked_up_by_digest_only(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.csv")
    tokens.add("s3cret-admin-token", User("admin", "admin", ("system:masters",)))
    tokens.add("s3cret-node-token", User("system:node:n1", "n1", ("system:nodes",)))
    assert (user := tokens.lookup("s3cret-admin-token")) is not None and user.name == "admin"
    assert (user := tokens.lookup("s3cret-node-token")) is not None
    assert user.name == "system:node:n1"
    for wrong in ("s3cret-admin-tokem", "s3cret", ""):
        assert tokens.lookup(wrong) is None
    # Nothing held in memory is a token, or a prefix a timing attack could probe for.
    held = repr(vars(tokens))
    assert "s3cret" not in held


# -- NodeRestriction ------------------------------------------------------------------------

def _node(labels: dict[str, str], taints: list[dict[str, str]] | None = None
          ) -> dict[str, object]:
    spec = {"taints": taints} if taints else {}
    return {"metadata": {"name": "n1", "labels": labels}, "spec": spec}


def _pod(labels: dict[str, str], node: str = "n1") -> dict[str, object]:
    return {"metadata": {"name": "p", "labels": labels}, "spec": {"nodeName": node}}


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        pytest.param(AdmissionAttributes("create", "", "nodes", "", "", "n1", None,
                                         _node({"kubernetes.io/hostname": "n1",
                                                "kubernetes.io/os": "linux",
                                                "node.kubernetes.io/exclude-from-external"
                                                "-load-balancers": "",
                                                "svcnet.io/cluster": "c"})),
                     None, id="create-with-kubelet-labels"),
        pytest.param(AdmissionAttributes("create", "", "nodes", "", "", "n1", None,
                                         _node({"node-role.kubernetes.io/control-plane": "",
                                                "kubernetes.io/os": "linux"})),
                     'nodes "n1" is forbidden: node "n1" is not allowed to set the following '
                     "labels: node-role.kubernetes.io/control-plane", id="create-with-role"),
        pytest.param(AdmissionAttributes("create", "", "nodes", "", "", "n2", None,
                                         _node({})),
                     'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"',
                     id="other-node"),
        pytest.param(AdmissionAttributes("update", "", "nodes", "", "", "n1", _node({}),
                                         _node({"node-role.kubernetes.io/master": "",
                                                "node-restriction.kubernetes.io/x": "y",
                                                "example.com/mine": "ok"})),
                     'nodes "n1" is forbidden: is not allowed to modify labels: '
                     "node-restriction.kubernetes.io/x, node-role.kubernetes.io/master",
                     id="update-adds-role"),
        pytest.param(AdmissionAttributes("update", "", "nodes", "status", "", "n1",
                                         _node({"node-role.kubernetes.io/master": ""}),
                                         _node({})),
                     'nodes "n1" is forbidden: is not allowed to modify labels: '
                     "node-role.kubernetes.io/master", id="status-update-removes-role"),
        pytest.param(AdmissionAttributes("update", "", "nodes", "", "", "n1",
                                         _node({"node-role.kubernetes.io/master": ""}),
                                         _node({"node-role.kubernetes.io/master": "",
                                                "kubernetes.io/arch": "amd64"})),
                     None, id="update-keeps-an-admins-role-label"),
        pytest.param(AdmissionAttributes("update", "", "nodes", "", "", "n1",
                                         _node({}, [{"key": "k", "effect": "NoSchedule"}]),
                                         _node({})),
                     'nodes "n1" is forbidden: node "n1" is not allowed to modify taints',
                     id="update-drops-taints"),
        pytest.param(AdmissionAttributes("update", "", "pods", "status", "default", "p",
                                         _pod({"app": "a"}), _pod({"app": "b"})),
                     'pods "p" is forbidden: node "n1" cannot update labels through pod '
                     "status", id="pod-status-relabels"),
        pytest.param(AdmissionAttributes("update", "", "pods", "status", "default", "p",
                                         _pod({"app": "a"}), _pod({})),
                     'pods "p" is forbidden: node "n1" cannot update labels through pod '
                     "status", id="pod-status-unlabels"),
        pytest.param(AdmissionAttributes("update", "", "pods", "status", "default", "p",
                                         _pod({}, "n2"), _pod({}, "n2")),
                     'pods "p" is forbidden: node "n1" can only update pod status for pods '
                     "with spec.nodeName set to itself", id="pod-of-another-node"),
        pytest.param(AdmissionAttributes("update", "", "pods", "status", "default", "p",
                                         _pod({"app": "a"}),
                                         {**_pod({"app": "a"}), "status": {"phase": "Running"}}),
                     None, id="pod-status-without-labels"),
    ],
)
def test_node_restriction(attrs: AdmissionAttributes, message: str | None) -> None:
    if message is None:
        node_restriction("n1", attrs)
        return
    with pytest.raises(StatusError) as err:
        node_restriction("n1", attrs)
    assert (err.value.code, err.value.reason, err.value.message) == (403, "Forbidden", message)


def test_a_certificate_lacking_an_address_is_reissued_from_the_same_ca(tmp_path: Path
                                                                       ) -> None:
    first = ensure_tls(tmp_path, ["127.0.0.1"])
    ca_before = first.ca_pem()
    cert_before = first.cert.read_bytes()
    again = ensure_tls(tmp_path, ["127.0.0.1"])
    assert again.cert.read_bytes() == cert_before  # nothing new: reused
    wider = ensure_tls(tmp_path, ["127.0.0.1", "198.51.100.7", "2001:db8::7"])
    assert wider.ca_pem() == ca_before
    cert = x509.load_pem_x509_certificate(wider.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_before)
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"198.51.100.7", "2001:db8::7", "127.0.0.1"} <= {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


async def test_one_live_server_per_data_directory(tmp_path: Path) -> None:
    """Its identity frees a dead predecessor's allocations at start-up: a second live server
    on the same directory would free the first's, so it is refused before it touches anything."""
    from svcnet.apiserver.server import APIServer, DataDirInUse, ServerConfig
    from svcnet.storage.memory import MemoryStore

    first = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"), store=MemoryStore())
    await first.start()
    try:
        second = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"),
                           store=MemoryStore())
        with pytest.raises(DataDirInUse):
            await second.start()
    finally:
        await first.stop()
    again = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"), store=MemoryStore())
    await again.start()  # the lock went with the first server
    await again.stop()
