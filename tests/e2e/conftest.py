"""A real `svcnet server` process for end-to-end tests, and helpers to drive real clients.

The server runs as a subprocess (`python -m svcnet.cli.main server`) on 127.0.0.1 with a port
chosen by the kernel and a fresh data directory; its kubeconfig is what kubectl and the
official Python client use.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    data_dir: Path
    kubeconfig: Path
    process: subprocess.Popen[bytes]
    cache_dir: Path

    @property
    def config(self) -> dict[str, Any]:
        doc: dict[str, Any] = yaml.safe_load(self.kubeconfig.read_text())
        return doc

    @property
    def url(self) -> str:
        return str(self.config["clusters"][0]["cluster"]["server"])

    @property
    def token(self) -> str:
        return str(self.config["users"][0]["user"]["token"])

    def get_json(self, *what: str) -> dict[str, Any]:
        """``kubectl get WHAT -o json``, decoded."""
        obj: dict[str, Any] = json.loads(self.kubectl("get", *what, "-o", "json").stdout)
        return obj

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 60, env: Mapping[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
        kubectl = require_binary("kubectl")
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                   KUBECACHEDIR=str(self.cache_dir), HOME=str(self.cache_dir), **(env or {}))
        r = subprocess.run([kubectl, *args], input=stdin, capture_output=True, text=True,
                           env=env, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r


def start_server(data_dir: Path, *extra: str, listen: str = "127.0.0.1:0",
                 wrapper: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start `svcnet server` (under ``wrapper``, e.g. ``ip netns exec NS``) and wait until
    it is ready."""
    kubeconfig = data_dir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    with open(data_dir / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "svcnet.cli.main", "server", "--data-dir",
             str(data_dir), "--listen", listen, *extra],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        if proc.poll() is not None:
            raise RuntimeError("svcnet server exited: "
                               + (data_dir / "server.log").read_text()[-2000:])
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("svcnet server did not become ready in 30 s")
        time.sleep(0.05)
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # its threads' stacks into its log, then
            time.sleep(1)
            proc.kill()
            proc.wait()
            args = [str(a) for a in proc.args] if isinstance(proc.args, list) else []
            log = (Path(args[args.index("--data-dir") + 1]) / "server.log"
                   if "--data-dir" in args else None)
            tail = log.read_text(errors="replace")[-6000:] if log and log.exists() else ""
            raise AssertionError(f"svcnet server did not stop within 20 s of SIGTERM; its log "
                                 f"ends:\n{tail}") from None
    return proc.returncode


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("server")
    proc = start_server(data_dir, "--lb-pool", "lan=172.20.0.200-172.20.0.250")
    cache = tmp_path_factory.mktemp("kubecache")
    try:
        yield Cluster(data_dir, data_dir / "kubeconfig", proc, cache)
    finally:
        code = stop_server(proc)
        assert code == 0, "svcnet server must shut down cleanly on SIGTERM"
