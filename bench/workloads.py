"""Workload figures on a local cluster (2 nodes): scale 0 -> 50 replicas to Ready, and a rolling
update of 10 replicas under continuous requests (duration, failed requests: must be 0).

Needs root; uses `svcnet up` with example (a). Run: .venv/bin/python bench/workloads.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]

CALLER = r"""
import json, os, sys, time, urllib.request
stop, ok, failed = sys.argv[1], 0, 0
while not os.path.exists(stop):
    try:
        urllib.request.urlopen("http://backend/", timeout=5).read()
        ok += 1
    except Exception:
        failed += 1
    time.sleep(0.01)
print(json.dumps({"ok": ok, "failed": failed}))
"""


def kubectl(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(["kubectl", *args], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out) if "-o" in args else out


def wait_available(env: dict[str, str], replicas: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        st = kubectl(env, "get", "deployment", "backend", "-o", "json").get("status", {})
        # Zero counts are omitted from the status, as Kubernetes omits them.
        if (st.get("availableReplicas", 0) == replicas == st.get("updatedReplicas", 0)
                and st.get("replicas", 0) == replicas):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {replicas} available: {st}")
        time.sleep(0.05)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/workloads.py needs root")
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, SVCNET_HOME=home)
        subprocess.run([*SVCNET, "up", "--detach", "-f", "examples/frontend-backend.yaml"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        kenv = dict(env, KUBECONFIG=str(Path(home) / "svcnet" / "kubeconfig"),
                    KUBECACHEDIR=str(Path(home) / "kcache"))
        try:
            kubectl(kenv, "scale", "deployment/backend", "--replicas=0")
            wait_available(kenv, 0)
            while kubectl(kenv, "get", "pods", "-l", "app=backend", "-o", "json")["items"]:
                time.sleep(0.1)
            t0 = time.perf_counter()
            kubectl(kenv, "scale", "deployment/backend", "--replicas=50")
            wait_available(kenv, 50)
            scale_up = time.perf_counter() - t0

            kubectl(kenv, "scale", "deployment/backend", "--replicas=10")
            wait_available(kenv, 10)
            stop = Path(home) / "stop"
            caller = subprocess.Popen(
                [*SVCNET, "exec", "frontend", "--", sys.executable, "-c", CALLER, str(stop)],
                cwd=ROOT, env=kenv, stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            t0 = time.perf_counter()
            kubectl(kenv, "set", "env", "deployment/backend", "ROLLED=1")
            time.sleep(0.5)
            wait_available(kenv, 10)
            rollout = time.perf_counter() - t0
            time.sleep(1)
            stop.write_text("")
            result = json.loads(caller.communicate(timeout=30)[0].strip())
        finally:
            subprocess.run([*SVCNET, "down"], cwd=ROOT, env=env, check=False,
                           capture_output=True)
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| scale 0 -> 50 replicas, all available, 2 nodes | {scale_up:.2f} s |")
    print(f"| rolling update of 10 replicas (maxSurge 1, maxUnavailable 0) | {rollout:.2f} s; "
          f"{result['failed']} failed of {result['ok'] + result['failed']} requests |")


if __name__ == "__main__":
    main()
