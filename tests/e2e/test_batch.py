"""batch/v1 Jobs and CronJobs on a whole `svcnet up` cluster, with the real kubectl: a Job's pod
runs on a node (the ``process`` runtime runs its command on the host), the Job completes,
``kubectl logs job/...`` shows what it printed and ``kubectl get jobs`` shows it Complete; a
CronJob (scheduled far in the future) is instantiated by ``kubectl create job --from``.

Needs root (a cluster); cluster name "jb" plus random hex, on the first free node network,
always removed by `svcnet down`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_root
from tests.e2e.local_clusters import unique_name
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
NAME = unique_name("jb")
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
pytestmark = pytest.mark.root

POD_SPEC = """      runtimeClassName: process
      restartPolicy: Never
      containers:
      - name: hello
        image: example/hello
        command: ["sh", "-c", "echo hi from $JOB"]
        env: [{name: JOB, value: %s}]
"""
JOB = """apiVersion: batch/v1
kind: Job
metadata: {name: hello}
spec:
  template:
    spec:
""" + POD_SPEC % "hello"
CRONJOB = """apiVersion: batch/v1
kind: CronJob
metadata: {name: yearly}
spec:
  schedule: "0 0 1 1 *"
  jobTemplate:
    spec:
      template:
        spec:
""" + "\n".join("    " + line if line else line for line in (POD_SPEC % "yearly").split("\n"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    require(shutil.which("nft") is not None, "nft is not installed")
    require(shutil.which("kubectl") is not None, "kubectl is not installed")
    h = tmp_path_factory.mktemp("svcnet-home")
    env = dict(os.environ, SVCNET_HOME=str(h))
    r = subprocess.run([*SVCNET, "up", "--name", NAME, "--detach"], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=180, check=False)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield h
    finally:
        subprocess.run([*SVCNET, "down", "--name", NAME], cwd=ROOT, env=env, timeout=120,
                       check=False)


def kubectl(home: Path, *args: str, stdin: str | None = None) -> str:
    env = dict(os.environ, KUBECONFIG=str(home / NAME / "kubeconfig"),
               KUBECACHEDIR=str(home / "kcache"))
    r = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                       input=stdin, timeout=60, check=False)
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return r.stdout


def complete(home: Path, job: str) -> bool:
    status = json.loads(kubectl(home, "get", "job", job, "-o", "json"))["status"]
    return any(c["type"] == "Complete" and c["status"] == "True"
               for c in status.get("conditions") or [])


def test_a_job_runs_to_completion_and_a_cronjob_is_instantiated(home: Path) -> None:
    kubectl(home, "apply", "-f", "-", stdin=JOB)
    wait_for(lambda: complete(home, "hello"), timeout=40, what="job hello Complete")
    assert kubectl(home, "logs", "job/hello").strip() == "hi from hello"
    header, row = kubectl(home, "get", "jobs", "hello").splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["hello", "Complete", "1/1"]
    pods = json.loads(kubectl(home, "get", "pods", "-l", "batch.kubernetes.io/job-name=hello",
                              "-o", "json"))["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"

    kubectl(home, "apply", "-f", "-", stdin=CRONJOB)
    header, row = kubectl(home, "get", "cronjobs").splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE",
                              "LAST", "SCHEDULE", "AGE"]
    assert row.split()[:7] == ["yearly", "0", "0", "1", "1", "*", "<none>"]
    kubectl(home, "create", "job", "manual", "--from=cronjob/yearly")
    wait_for(lambda: complete(home, "manual"), timeout=40, what="job manual Complete")
    assert kubectl(home, "logs", "job/manual").strip() == "hi from yearly"
    manual = json.loads(kubectl(home, "get", "job", "manual", "-o", "json"))
    assert manual["metadata"]["ownerReferences"][0]["name"] == "yearly"
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    # Deleting the Job (kubectl cascades in the background) takes its pods along.
    kubectl(home, "delete", "job", "hello")
    wait_for(lambda: not json.loads(kubectl(
        home, "get", "pods", "-l", "batch.kubernetes.io/job-name=hello", "-o", "json"))["items"],
        timeout=30, what="hello's pods gone")
