"""ServiceAccountsController against the in-memory API: what sync creates, what it leaves
alone, and which events queue a namespace (conventions of ``test_endpoints_controller``)."""

from __future__ import annotations

import pytest

from svcnet.api.errors import StatusError, namespace_terminating_error
from svcnet.client.informer import Informer
from svcnet.client.rest import GVR, NAMESPACES, SERVICEACCOUNTS
from svcnet.controllers.serviceaccounts import ServiceAccountsController
from svcnet.util.clock import FakeClock
from tests.unit.controllers.test_endpointslice_helpers import T0, FakeAPI, Obj, sync_cache


def _ns(name: str, phase: str = "Active") -> Obj:
    return {"metadata": {"name": name}, "status": {"phase": phase}}


def _sa(namespace: str, name: str) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}}


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.api = FakeAPI()
        self.informers = {gvr: Informer(self.api, gvr, clock=self.clock)
                          for gvr in (NAMESPACES, SERVICEACCOUNTS)}
        self.ctrl = ServiceAccountsController(
            self.api, clock=self.clock, namespaces=self.informers[NAMESPACES],
            accounts=self.informers[SERVICEACCOUNTS])

    def put(self, gvr: GVR, *objs: Obj) -> None:
        for obj in objs:
            self.api.seed(gvr, obj)
        for g, informer in self.informers.items():
            sync_cache(informer, self.api.items(g))

    def accounts(self) -> list[str]:
        return sorted(self.api.store(SERVICEACCOUNTS))


@pytest.fixture
def env() -> Env:
    return Env()


async def test_creates_default_in_an_active_namespace(env: Env) -> None:
    env.put(NAMESPACES, _ns("a"), _ns("gone", "Terminating"))
    await env.ctrl.sync("a")
    await env.ctrl.sync("gone")
    await env.ctrl.sync("missing")
    assert env.accounts() == ["a/default"]
    sa = env.api.get(SERVICEACCOUNTS, "a/default")
    assert sa is not None and sa["metadata"]["name"] == "default"
    assert set(sa["metadata"]) <= {"name", "namespace", "uid", "resourceVersion",
                                   "creationTimestamp"}


async def test_existing_default_is_left_alone(env: Env) -> None:
    env.put(NAMESPACES, _ns("a"))
    env.put(SERVICEACCOUNTS, _sa("a", "default"))
    await env.ctrl.sync("a")
    assert env.api.writes("serviceaccounts") == []


async def test_already_exists_and_terminating_are_not_failures(env: Env) -> None:
    env.put(NAMESPACES, _ns("a"))
    env.api.fail["create"] = [StatusError(409, "AlreadyExists", "exists")]
    await env.ctrl.sync("a")
    env.api.fail["create"] = [namespace_terminating_error("serviceaccounts", "default", "a")]
    await env.ctrl.sync("a")
    env.api.fail["create"] = [StatusError(500, "InternalError", "boom")]
    with pytest.raises(StatusError):
        await env.ctrl.sync("a")


async def test_handlers_queue_namespaces(env: Env) -> None:
    ns = _ns("a")
    env.ctrl._namespace_changed(ns)
    env.ctrl._account_deleted(_sa("b", "default"))
    env.ctrl._account_deleted(_sa("c", "builder"))  # not managed: nothing to restore
    keys = []
    while len(env.ctrl.controller.queue):
        key = await env.ctrl.controller.queue.get()
        env.ctrl.controller.queue.done(key)
        keys.append(key)
    assert sorted(keys) == ["a", "b"]
