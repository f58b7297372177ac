"""The oldest kubectl the installed dispatcher ships, against the real server.

The `kubectl` package installed here is a dispatcher: it runs the `kubectl.1.NN` next to it
that matches the server's version (1.33 for svcnet), so the rest of the suite drives kubectl
1.33. Older releases send the same protobuf and read the same OpenAPI, but with older code:
this runs the everyday commands with the oldest one shipped. (Exec, attach and port-forward,
which it opens with plain SPDY, are in test_stream.py: they need a cluster with nodes.)
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.e2e.conftest import Cluster


def oldest_kubectl() -> Path | None:
    """The lowest ``kubectl.1.NN`` beside the dispatcher, if it is one."""
    real = Path(require_binary("kubectl")).resolve()
    versions = [(int(m.group(1)), p) for p in real.parent.glob("kubectl.1.*")
                if (m := re.fullmatch(r"kubectl\.1\.(\d+)", p.name))]
    return min(versions)[1] if versions else None


def test_everyday_commands_with_the_oldest_kubectl(cluster: Cluster) -> None:
    old = oldest_kubectl()
    if old is None:
        pytest.skip("the installed kubectl is not a dispatcher with older releases beside it")
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), HOME=str(cluster.cache_dir),
               KUBECACHEDIR=str(cluster.cache_dir / old.name))

    def run(*args: str) -> str:
        r = subprocess.run([str(old), *args], capture_output=True, text=True, env=env,
                           timeout=60, check=False)
        assert r.returncode == 0, f"{old.name} {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    ns = f"old-{old.name.rsplit('.', 1)[1]}"
    run("create", "namespace", ns)  # protobuf body
    run("-n", ns, "create", "deployment", "web", "--image=x", "--replicas=2")
    run("-n", ns, "create", "service", "clusterip", "web", "--tcp=80:8080")
    run("-n", ns, "create", "configmap", "conf", "--from-literal=a=b")
    assert "web" in run("-n", ns, "get", "svc,deploy,cm")
    assert run("auth", "can-i", "create", "services").strip() == "yes"
    assert "FIELD: type <string>" in run("explain", "service.spec.type")
    assert run("-n", ns, "delete", "configmap", "conf").strip() == 'configmap "conf" deleted'
