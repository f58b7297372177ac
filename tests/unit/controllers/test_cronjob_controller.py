"""CronJobController against the in-process API, with a fake clock moved from one activation
to the next: Jobs named by their activation, active and last-schedule status, concurrency
policies, starting deadlines, history limits and suspension."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from svcnet.client.rest import EVENTS
from svcnet.controllers.cronjob import CronJobController, job_name
from svcnet.controllers.ownership import CRONJOBS, JOBS
from svcnet.util.clock import rfc3339
from tests.unit.controllers.test_replicaset_helpers import T0, Obj, World


def make_cronjob(name: str = "tick", **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {
                "metadata": {"labels": {"app": "tick"}},
                "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                    {"name": "c", "image": "busybox"}]}}}}, **spec}}


class Env(World):
    def __init__(self) -> None:
        super().__init__((JOBS, CRONJOBS))
        self.ctrl = CronJobController(self.api, cronjobs=self.informers[CRONJOBS],
                                      jobs=self.informers[JOBS], clock=self.clock)

    async def step(self) -> None:
        await self.catch_up(notify=True)
        await self.ctrl.sync("ns/tick")
        await self.catch_up(notify=True)

    async def jobs(self) -> list[Obj]:
        return sorted(await self.api.items(JOBS, "ns"), key=lambda j: j["metadata"]["name"])

    async def cronjob(self) -> Obj:
        return await self.api.get(CRONJOBS, "ns", "tick")

    async def finish(self, job: Obj, ctype: str = "Complete") -> None:
        now = rfc3339(self.clock.now())
        job["status"] = {"startTime": job["metadata"]["creationTimestamp"], "conditions": [
            {"type": "SuccessCriteriaMet" if ctype == "Complete" else "FailureTarget",
             "status": "True"}, {"type": ctype, "status": "True"}]}
        if ctype == "Complete":
            job["status"]["completionTime"] = now
        await self.api.update(JOBS, job, subresource="status")


@pytest.fixture
def env() -> Env:
    return Env()


async def test_creates_a_job_per_activation(env: Env) -> None:
    await env.create(CRONJOBS, make_cronjob())
    await env.step()
    assert await env.jobs() == [], "T0 is on the hour: the first activation is T0+5m"
    env.clock.advance(5 * 60 + 3)
    await env.step()
    jobs = await env.jobs()
    scheduled = T0 + timedelta(minutes=5)
    assert [j["metadata"]["name"] for j in jobs] == [f"tick-{int(scheduled.timestamp()) // 60}"]
    job = jobs[0]
    cj = await env.cronjob()
    assert job["metadata"]["labels"]["app"] == "tick"
    assert job["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-01-01T00:05:00Z"
    assert job["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert cj["status"]["lastScheduleTime"] == rfc3339(scheduled)
    assert [r["name"] for r in cj["status"]["active"]] == [job["metadata"]["name"]]
    # The same activation never makes a second Job.
    await env.step()
    assert len(await env.jobs()) == 1
    await env.finish(job)
    await env.step()
    cj = await env.cronjob()
    assert "active" not in cj["status"]
    assert cj["status"]["lastSuccessfulTime"] == rfc3339(env.clock.now())
    reasons = {e["reason"] for e in await env.api.items(EVENTS, "ns")}
    assert {"SuccessfulCreate", "SawCompletedJob"} <= reasons


async def test_forbid_skips_while_a_job_runs_and_replace_replaces_it(env: Env) -> None:
    await env.create(CRONJOBS, make_cronjob(concurrencyPolicy="Forbid"))
    env.clock.advance(5 * 60)
    await env.step()
    env.clock.advance(5 * 60)
    await env.step()
    assert len(await env.jobs()) == 1
    cj = await env.cronjob()
    cj["spec"]["concurrencyPolicy"] = "Replace"
    await env.api.update(CRONJOBS, cj)
    await env.step()
    jobs = await env.jobs()
    assert [j["metadata"]["name"] for j in jobs] == [
        job_name(cj, T0 + timedelta(minutes=10))]


async def test_allow_runs_jobs_side_by_side(env: Env) -> None:
    await env.create(CRONJOBS, make_cronjob())
    for _ in range(2):
        env.clock.advance(5 * 60)
        await env.step()
    assert len(await env.jobs()) == 2
    assert len((await env.cronjob())["status"]["active"]) == 2


async def test_missed_start_deadline_and_suspend(env: Env) -> None:
    await env.create(CRONJOBS, make_cronjob(startingDeadlineSeconds=10, suspend=True))
    env.clock.advance(5 * 60)
    await env.step()
    assert await env.jobs() == [], "suspended"
    cj = await env.cronjob()
    cj["spec"]["suspend"] = False
    await env.api.update(CRONJOBS, cj)
    env.clock.advance(60)
    await env.step()
    assert await env.jobs() == [], "the 00:05 activation is more than 10 s late"
    env.clock.advance(4 * 60)
    await env.step()
    assert len(await env.jobs()) == 1


async def test_history_limits_delete_the_oldest_finished_jobs(env: Env) -> None:
    await env.create(CRONJOBS, make_cronjob(successfulJobsHistoryLimit=1,
                                            failedJobsHistoryLimit=0))
    for ctype in ("Complete", "Complete", "Failed"):
        env.clock.advance(5 * 60)
        await env.step()
        newest = (await env.jobs())[-1]
        await env.finish(newest, ctype)
    await env.step()
    left = await env.jobs()
    assert [j["metadata"]["name"] for j in left] == [
        job_name(await env.cronjob(), T0 + timedelta(minutes=10))]


async def test_time_zone(env: Env) -> None:
    await env.create(CRONJOBS, make_cronjob(schedule="0 9 * * *", timeZone="Asia/Tokyo"))
    env.clock.advance(3600)  # 09:00 in Tokyo is 00:00 UTC: the next is tomorrow
    await env.step()
    assert await env.jobs() == []
    env.clock.advance(23 * 3600)
    await env.step()
    job = (await env.jobs())[0]
    assert job["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-01-02T09:00:00+09:00"
