"""JobController against the in-process API (real Job and pod registries): pods created from
the template, success, back-off and the backoff limit, deadlines, suspension, and the Table
kubectl prints. Informers are never started: ``World.catch_up`` plays the watch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from svcnet.apiserver.tables import table_for
from svcnet.client.rest import EVENTS, PODS
from svcnet.controllers.job import JobController, plan_job
from svcnet.controllers.ownership import JOBS
from svcnet.util.clock import rfc3339
from tests.unit.controllers.test_replicaset_helpers import T0, Obj, World


def make_job(name: str = "pi", **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hi"]}]}},
                     **spec}}


class Env(World):
    def __init__(self) -> None:
        super().__init__((PODS, JOBS))
        self.ctrl = JobController(self.api, jobs=self.informers[JOBS],
                                  pods=self.informers[PODS], clock=self.clock)

    async def job(self, name: str = "pi") -> Obj:
        return await self.api.get(JOBS, "ns", name)

    async def step(self, name: str = "pi") -> None:
        await self.catch_up(notify=True)
        await self.ctrl.sync(f"ns/{name}")
        await self.catch_up(notify=True)

    async def finish(self, phase: str, *, only: int | None = None) -> None:
        """A kubelet: the live pods (or the first ``only``) end in ``phase``."""
        pods = [p for p in await self.pods() if (p.get("status") or {}).get("phase")
                not in ("Succeeded", "Failed")]
        for pod in pods[:only]:
            pod["status"] = {"phase": phase, "containerStatuses": [{
                "name": "c", "restartCount": 0, "state": {"terminated": {
                    "exitCode": 0 if phase == "Succeeded" else 1,
                    "finishedAt": rfc3339(self.clock.now())}}}]}
            await self.api.update(PODS, pod, subresource="status")


@pytest.fixture
def env() -> Env:
    return Env()


def cells(job: Obj, now: Any) -> list[Any]:
    table = table_for([job], api_version="batch/v1", kind="Job", now=now, resource_version="1")
    return list(table["rows"][0]["cells"])


def conditions(job: Obj) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in job["status"].get("conditions", [])}


async def test_runs_a_pod_to_completion(env: Env) -> None:
    await env.create(JOBS, make_job())
    await env.step()
    pods = await env.pods()
    assert len(pods) == 1
    job = await env.job()
    meta = pods[0]["metadata"]
    assert meta["name"].startswith("pi-")
    assert meta["labels"]["batch.kubernetes.io/job-name"] == "pi"
    assert meta["labels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"]
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                        "uid": job["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]
    assert job["status"]["active"] == 1 and job["status"]["startTime"] == rfc3339(T0)
    assert job["status"]["uncountedTerminatedPods"] == {}
    assert cells(job, T0 + timedelta(seconds=5))[:4] == ["pi", "Running", "0/1", "5s"]

    env.clock.advance(7)
    await env.finish("Succeeded")
    await env.step()
    job = await env.job()
    assert conditions(job) == {"SuccessCriteriaMet": ("True", "CompletionsReached"),
                               "Complete": ("True", "CompletionsReached")}
    assert job["status"]["succeeded"] == 1 and "active" not in job["status"]
    assert job["status"]["completionTime"] == rfc3339(T0 + timedelta(seconds=7))
    assert cells(job, T0 + timedelta(minutes=3))[:5] == ["pi", "Complete", "1/1", "7s", "3m"]
    reasons = sorted(e["reason"] for e in await env.api.items(EVENTS, "ns"))
    assert reasons == ["Completed", "SuccessfulCreate"]
    # Finished: a further sync changes nothing.
    before = len(env.api.actions)
    await env.step()
    assert len(env.api.actions) == before


async def test_parallelism_and_completions(env: Env) -> None:
    await env.create(JOBS, make_job(parallelism=2, completions=3))
    await env.step()
    assert len(await env.pods()) == 2
    await env.finish("Succeeded", only=1)
    await env.step()
    # min(parallelism, completions - succeeded) = 2 active again: one more pod.
    job = await env.job()
    assert (job["status"]["succeeded"], job["status"]["active"]) == (1, 2)
    assert len(await env.pods()) == 3
    await env.finish("Succeeded", only=1)
    await env.step()
    job = await env.job()
    assert (job["status"]["succeeded"], job["status"]["active"]) == (2, 1)
    assert len(await env.pods()) == 3, "one completion left, one pod running"
    await env.finish("Succeeded")
    await env.step()
    assert conditions(await env.job())["Complete"] == ("True", "CompletionsReached")


async def test_failed_pods_are_replaced_after_backoff_then_the_job_fails(env: Env) -> None:
    await env.create(JOBS, make_job(backoffLimit=1))
    await env.step()
    await env.finish("Failed")
    await env.step()
    job = await env.job()
    assert job["status"]["failed"] == 1 and "active" not in job["status"]
    assert len(await env.pods()) == 1, "no replacement before the 10 s back-off"
    env.clock.advance(11)
    await env.step()
    assert len(await env.pods()) == 2
    await env.finish("Failed")
    await env.step()
    job = await env.job()
    assert conditions(job) == {"FailureTarget": ("True", "BackoffLimitExceeded"),
                               "Failed": ("True", "BackoffLimitExceeded")}
    assert job["status"]["failed"] == 2
    assert cells(job, env.clock.now())[1] == "Failed"
    assert "BackoffLimitExceeded" in {e["reason"] for e in await env.api.items(EVENTS, "ns")}


async def test_active_deadline_fails_the_job_and_removes_its_pods(env: Env) -> None:
    await env.create(JOBS, make_job(activeDeadlineSeconds=30))
    await env.step()
    assert len(await env.pods()) == 1
    env.clock.advance(31)
    await env.step()
    job = await env.job()
    assert conditions(job)["Failed"] == ("True", "DeadlineExceeded")
    assert await env.pods() == []


async def test_suspend_deletes_pods_and_resume_restarts(env: Env) -> None:
    await env.create(JOBS, make_job())
    await env.step()
    job = await env.job()
    job["spec"]["suspend"] = True
    await env.api.update(JOBS, job)
    await env.step()
    job = await env.job()
    assert await env.pods() == []
    assert conditions(job)["Suspended"] == ("True", "JobSuspended")
    assert cells(job, T0)[1] == "Suspended"
    job["spec"]["suspend"] = False
    await env.api.update(JOBS, job)
    env.clock.advance(60)
    await env.step()
    job = await env.job()
    assert conditions(job)["Suspended"] == ("False", "JobResumed")
    assert job["status"]["startTime"] == rfc3339(env.clock.now())
    assert len(await env.pods()) == 1


def test_plan_of_a_work_queue_job() -> None:
    # No completions: parallelism pods, done once one succeeded and none is active.
    job = {"metadata": {"name": "q"}, "spec": {"parallelism": 2, "backoffLimit": 6,
                                               "template": {"spec": {}}}, "status": {}}
    plan = plan_job(job, [], T0)
    assert plan.create == 2
    running = {"metadata": {"name": "a"}, "status": {"phase": "Running"}}
    done = {"metadata": {"name": "b"}, "status": {"phase": "Succeeded"}}
    plan = plan_job(job, [running, done], T0)
    assert plan.create == 0 and plan.status["active"] == 1
    plan = plan_job(job, [done], T0)
    assert any(c["type"] == "Complete" for c in plan.status["conditions"])


def test_plan_on_failure_restarts_count_against_the_limit() -> None:
    job = {"metadata": {"name": "r"}, "spec": {"parallelism": 1, "completions": 1,
                                               "backoffLimit": 2, "template": {
                                                   "spec": {"restartPolicy": "OnFailure"}}},
           "status": {}}
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "c", "restartCount": 2}]}}
    plan = plan_job(job, [pod], T0)
    assert [c["reason"] for c in plan.status["conditions"]] == ["BackoffLimitExceeded"] * 2
    assert [p["metadata"]["name"] for p in plan.delete] == ["p"]
