"""batch/v1 Jobs and CronJobs on a whole `svcnet up` cluster, with the real kubectl: a Job's pod
runs on a node (the ``process`` runtime runs its command on the host), the Job completes,
``kubectl logs job/...`` shows what it printed and ``kubectl get jobs`` shows it Complete; a
CronJob (scheduled far in the future) is instantiated by ``kubectl create job --from``.

Needs root (a cluster); cluster name "jb" plus random hex, on the first free node network,
always removed by `svcnet down`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster
from tests.waiting import wait_for

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
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory, "jb") as cluster:
        yield cluster


def complete(home: LocalCluster, job: str) -> bool:
    status = json.loads(home.kubectl("get", "job", job, "-o", "json"))["status"]
    return any(c["type"] == "Complete" and c["status"] == "True"
               for c in status.get("conditions") or [])


def seen(home: LocalCluster, job: str) -> str:
    """What a wait for ``job`` saw: its pods and their Events (a failure explains itself)."""
    return (home.kubectl("get", "job", job, "-o", "wide")
            + home.kubectl("get", "pods", "-l", f"batch.kubernetes.io/job-name={job}", "-o",
                           "wide")
            + home.kubectl("get", "events", "--sort-by=.lastTimestamp", "-o",
                           "custom-columns=OBJ:.involvedObject.name,REASON:.reason,"
                           "MESSAGE:.message"))


def test_a_job_runs_to_completion_and_a_cronjob_is_instantiated(home: LocalCluster) -> None:
    home.kubectl("apply", "-f", "-", stdin=JOB)
    # 60 s: a loaded CI machine once took more than 40 (alone it takes about 5).
    wait_for(lambda: complete(home, "hello"), timeout=60, what="job hello Complete",
             detail=lambda: seen(home, "hello"))
    assert home.kubectl("logs", "job/hello").strip() == "hi from hello"
    header, row = home.kubectl("get", "jobs", "hello").splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["hello", "Complete", "1/1"]
    pods = json.loads(home.kubectl("get", "pods", "-l", "batch.kubernetes.io/job-name=hello",
                              "-o", "json"))["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"

    home.kubectl("apply", "-f", "-", stdin=CRONJOB)
    header, row = home.kubectl("get", "cronjobs").splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE",
                              "LAST", "SCHEDULE", "AGE"]
    assert row.split()[:7] == ["yearly", "0", "0", "1", "1", "*", "<none>"]
    home.kubectl("create", "job", "manual", "--from=cronjob/yearly")
    wait_for(lambda: complete(home, "manual"), timeout=60, what="job manual Complete",
             detail=lambda: seen(home, "manual"))
    assert home.kubectl("logs", "job/manual").strip() == "hi from yearly"
    manual = json.loads(home.kubectl("get", "job", "manual", "-o", "json"))
    assert manual["metadata"]["ownerReferences"][0]["name"] == "yearly"
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    # Deleting the Job (kubectl cascades in the background) takes its pods along.
    home.kubectl("delete", "job", "hello")
    wait_for(lambda: not json.loads(home.kubectl(
        "get", "pods", "-l", "batch.kubernetes.io/job-name=hello", "-o", "json"))["items"],
        timeout=30, what="hello's pods gone")
