"""Throwaway etcds for tests: one member (the contract suite, the server on etcd), or an
N-member cluster (the HA control plane's tests)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.apiserver.certs import EtcdMember, ensure_etcd_pki
from svcnet.storage import EtcdTLS
from tests.conftest import free_port, require_binary

__all__ = ["EtcdCluster", "EtcdServer", "etcd", "member_argv"]


def sigstop(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until the kernel shows it stopped."""
    os.kill(pid, signal.SIGSTOP)
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 5
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "etcd did not stop on SIGSTOP"
        time.sleep(0.01)


class EtcdServer:
    """One throwaway single-member ``etcd`` on 127.0.0.1, started on first use.

    Random free client and peer ports, a data dir under /dev/shm when there is one (etcd
    fsyncs every write), and short raft timers so that it is up in well under a second. It is
    shared by the whole session: every store gets its own key prefix and counts revisions from
    the etcd revision at which it connected (``revision_base=None``), so each test sees a fresh
    store starting at revision 0. :meth:`stop` kills exactly the process it started.

    For outage tests, :meth:`kill` SIGKILLs the process (by its pid) and keeps its data, and
    :meth:`restart` starts it again on the same ports and data.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None
        self.endpoint = ""
        self._prefixes = itertools.count()
        self._urls: tuple[str, str] | None = None  # (client, peer), fixed once chosen

    def start(self) -> str:
        if self.proc is not None:
            assert self.proc.poll() is None, "the test etcd died"
            return self.endpoint
        binary = require_binary("etcd")
        if self.dir is None:
            shm = Path("/dev/shm")
            self.dir = Path(tempfile.mkdtemp(prefix="svcnet-etcd-",
                                             dir=shm if shm.is_dir() else None))
        if self._urls is None:
            self._urls = (f"http://127.0.0.1:{free_port()}",
                          f"http://127.0.0.1:{free_port()}")
        client, peer = self._urls
        log = (self.dir / "etcd.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, "--name", "svcnet-test", "--data-dir", str(self.dir / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"svcnet-test={peer}", "--heartbeat-interval", "10",
             "--election-timeout", "100", "--logger", "zap", "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as response:
                    if json.load(response).get("health") == "true":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = (self.dir / "etcd.log").read_text(errors="replace")
                self.stop()
                pytest.fail(f"the test etcd did not become healthy:\n{output[-3000:]}")
            time.sleep(0.02)
        self.endpoint = client.removeprefix("http://")
        return self.endpoint

    def new_prefix(self) -> str:
        return f"/svcnet-test/{next(self._prefixes)}/"

    def kill(self) -> None:
        """SIGKILL the etcd process (an outage); its data and ports stay for :meth:`restart`."""
        proc, self.proc = self.proc, None
        assert proc is not None, "etcd is not running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def freeze(self) -> None:
        """SIGSTOP the etcd process (it keeps its connections and answers nothing), and wait
        until the kernel shows it stopped, so that no request sent from now on is answered;
        :meth:`thaw` continues it."""
        assert self.proc is not None, "etcd is not running"
        sigstop(self.proc.pid)

    def thaw(self) -> None:
        assert self.proc is not None, "etcd is not running"
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> str:
        """Start etcd again after :meth:`kill`, on the same ports and data."""
        assert self.proc is None and self._urls is not None, "kill() first"
        return self.start()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a test may have frozen it (SIGSTOP)
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self._urls = None


def member_argv(name: str, data_dir: Path, client: str, peer: str, cluster: str,
                token: str, *, pki: Path | None = None) -> list[str]:
    """The command of one member of a new etcd cluster (``cluster``: ``name=peer-URL,...``)
    with raft timers short but not the single member's (heartbeat 50 ms, election 500 ms):
    members on a loaded two-core machine must not keep electing.

    With ``pki`` (``svcnet etcd-certs``'s directory), TLS on both URLs (which must then be
    https://), and client certificates required on both, as docs/HA.md sets members up."""
    tls: list[str] = []
    if pki is not None:
        ca, own = str(pki / "ca.crt"), pki / name
        tls = ["--cert-file", str(own / "server.crt"), "--key-file", str(own / "server.key"),
               "--trusted-ca-file", ca, "--client-cert-auth",
               "--peer-cert-file", str(own / "peer.crt"),
               "--peer-key-file", str(own / "peer.key"),
               "--peer-trusted-ca-file", ca, "--peer-client-cert-auth"]
    return [require_binary("etcd"), *tls, "--name", name, "--data-dir", str(data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", token, "--heartbeat-interval", "50",
            "--election-timeout", "500", "--logger", "zap", "--log-level", "warn"]


class EtcdCluster:
    """An ``n``-member etcd cluster on loopback: free client and peer ports per member, data
    under /dev/shm when there is one, raft timers as :func:`member_argv`'s. :meth:`kill`
    SIGKILLs one member by its pid (its data and ports stay); :meth:`restart` starts it
    again; :meth:`freeze` and :meth:`thaw` stop and continue members (SIGSTOP, SIGCONT);
    :meth:`stop` ends every member this object started and removes the data.

    With ``tls``, member ``i`` listens on 127.0.0.(2+i) with certificates from `svcnet
    etcd-certs` naming that address only (and localhost: never dialled here), TLS and client
    certificates on both URLs; :attr:`tls` is then the store's :class:`EtcdTLS`."""

    def __init__(self, n: int = 3, *, tls: bool = False) -> None:
        shm = Path("/dev/shm")
        self.dir = Path(tempfile.mkdtemp(prefix="svcnet-etcd-cluster-",
                                         dir=shm if shm.is_dir() else None))
        self.names = [f"svcnet-m{i}" for i in range(n)]
        hosts = [f"127.0.0.{2 + i}" if tls else "127.0.0.1" for i in range(n)]
        scheme = "https" if tls else "http"
        self.clients = [f"{scheme}://{h}:{free_port(h)}" for h in hosts]
        self.peers = [f"{scheme}://{h}:{free_port(h)}" for h in hosts]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n
        self._token = f"svcnet-{os.getpid()}-{time.monotonic_ns()}"
        self.pki: Path | None = None
        self.tls: EtcdTLS | None = None
        self._context: ssl.SSLContext | None = None
        if tls:
            self.pki = self.dir / "pki"
            ensure_etcd_pki(self.pki, [EtcdMember(name, (host,))
                                       for name, host in zip(self.names, hosts, strict=True)])
            self.tls = EtcdTLS(self.pki / "ca.crt", self.pki / "apiserver-etcd-client.crt",
                               self.pki / "apiserver-etcd-client.key")
            self._context = ssl.create_default_context(cafile=str(self.tls.ca_file))
            assert self.tls.cert_file is not None and self.tls.key_file is not None
            self._context.load_cert_chain(self.tls.cert_file, self.tls.key_file)

    @property
    def endpoints(self) -> str:
        """``host:port,host:port,...``, as an ``etcd://`` store URL names them."""
        return ",".join(c.split("://", 1)[1] for c in self.clients)

    def _spawn(self, i: int) -> None:
        log = (self.dir / f"{self.names[i]}.log").open("ab")
        cluster = ",".join(f"{n}={p}" for n, p in zip(self.names, self.peers, strict=True))
        self.procs[i] = subprocess.Popen(
            member_argv(self.names[i], self.dir / self.names[i], self.clients[i],
                        self.peers[i], cluster, self._token, pki=self.pki),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _healthy(self, i: int) -> bool:
        try:
            with urllib.request.urlopen(f"{self.clients[i]}/health", timeout=1,
                                        context=self._context) as response:
                return bool(json.load(response).get("health") == "true")
        except OSError:
            return False

    def _wait_healthy(self, members: list[int]) -> None:
        deadline = time.monotonic() + 20
        while not all(self._healthy(i) for i in members):
            dead = [i for i in members if (p := self.procs[i]) is None or p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join((self.dir / f"{self.names[i]}.log").read_text(
                    errors="replace")[-1500:] for i in members)
                self.stop()
                pytest.fail(f"the etcd cluster did not become healthy:\n{logs}")
            time.sleep(0.05)

    def start(self) -> str:
        for i in range(len(self.names)):
            self._spawn(i)
        self._wait_healthy(list(range(len(self.names))))
        return self.endpoints

    def kill(self, i: int) -> None:
        proc, self.procs[i] = self.procs[i], None
        assert proc is not None, f"member {i} is not running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def freeze(self, *members: int) -> None:
        """SIGSTOP ``members`` (they keep their connections and answer nothing, peers
        included); :meth:`thaw` continues them."""
        for i in members:
            proc = self.procs[i]
            assert proc is not None, f"member {i} is not running"
            sigstop(proc.pid)

    def thaw(self, *members: int) -> None:
        for i in members:
            proc = self.procs[i]
            assert proc is not None, f"member {i} is not running"
            os.kill(proc.pid, signal.SIGCONT)

    def restart(self, *members: int) -> None:
        for i in members:
            assert self.procs[i] is None, "kill() first"
            self._spawn(i)
        self._wait_healthy(list(members))

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            self.procs[i] = None
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)  # throwaway data: no clean stop needed
                # (SIGKILL ends a stopped process too.)
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    """An etcd of the test's own (tests may kill, freeze and restart it), stopped after it.
    Registered for every test by ``pytest_plugins`` in tests/conftest.py."""
    server = EtcdServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
