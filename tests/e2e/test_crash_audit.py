"""kill -9 of the real server under 16 concurrent writers, on SQLite and on etcd: after each
restart every acknowledged write is there, no delete came back, nothing unacknowledged appeared,
and no ClusterIP or NodePort is held twice (the long run is bench/crash.py)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e import crash_audit
from tests.etcd_server import EtcdServer

# Writes acknowledged before each kill (crash_audit.run writes until then, time permitting).
MIN_WRITES = 30


def check(audits: list[crash_audit.Audit]) -> None:
    for n, a in enumerate(audits, 1):
        assert a.clean, f"after kill {n}: {a}"
    assert sum(a.acknowledged for a in audits[-1:]) > 50, "the writers barely wrote anything"


def test_kill_9_on_sqlite_loses_nothing(tmp_path: Path) -> None:
    check(crash_audit.run(tmp_path, [], kills=2, seed=1, min_writes=MIN_WRITES))


def test_kill_9_on_etcd_loses_nothing(tmp_path: Path, etcd: EtcdServer) -> None:
    check(crash_audit.run(tmp_path, ["--store", f"etcd://{etcd.endpoint}/svcnet-crash/"],
                          kills=2, seed=2, min_writes=MIN_WRITES))


def test_the_audit_sees_each_kind_of_damage() -> None:
    """The audit itself can fail: fabricated books against a fabricated store."""
    def svc(name: str, version: int, ip: str, port: int | None = None) -> dict[str, object]:
        return {"metadata": {"name": name, "namespace": "default",
                             "annotations": {crash_audit.VERSION: str(version)}},
                "spec": {"clusterIP": ip, "ports": [{"port": 80, "nodePort": port}]}}
    Known = crash_audit.Known
    books = crash_audit.Books(known={
        "kept": Known(True, 2, "10.0.0.1", 30001), "gone": Known(True, 1, "10.0.0.2"),
        "stale": Known(True, 3, "10.0.0.3"), "back": Known(False, 1),
        "moved": Known(True, 0, "10.0.0.5")},
        uncertain={"maybe": ("create", 0)})
    result = crash_audit.audit(books, [
        svc("kept", 2, "10.0.0.1", 30001), svc("stale", 2, "10.0.0.3"),
        svc("back", 1, "10.0.0.4"), svc("moved", 0, "10.0.0.6"), svc("maybe", 0, "10.0.0.7"),
        svc("ghost", 0, "10.0.0.1", 30001)])
    assert [len(x) for x in (result.lost, result.resurrected, result.phantom, result.moved,
                             result.double)] == [2, 1, 1, 1, 2]
    assert not result.clean
