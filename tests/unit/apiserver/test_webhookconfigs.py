"""The per-process view of the webhook configurations (svcnet/apiserver/webhookconfigs.py)
against real registries on SQLite: written through one process (one store handle), followed
by another's watch, through a watch that breaks, and gone when the view stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from svcnet.apiserver.webhookconfigs import RELIST_DELAY, WebhookConfigurations
from svcnet.registry.admissionregistration import (
    MutatingWebhookConfigurationStrategy,
    ValidatingWebhookConfigurationStrategy,
)
from svcnet.registry.generic import Registry
from svcnet.storage.interface import EventType
from svcnet.storage.sqlite import SQLiteStore
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]


def configuration(kind: str, name: str, *hooks: str) -> Obj:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name},
            "webhooks": [{"name": h, "clientConfig": {"url": "https://example.com"},
                          "sideEffects": "None", "admissionReviewVersions": ["v1"]}
                         for h in hooks]}


def validating(name: str, *hooks: str) -> Obj:
    return configuration("ValidatingWebhookConfiguration", name, *hooks)


def mutating(name: str, *hooks: str) -> Obj:
    return configuration("MutatingWebhookConfiguration", name, *hooks)


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def names(objs: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


async def test_the_view_follows_the_store_through_a_broken_watch(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    writer, reader = SQLiteStore(db), SQLiteStore(db)  # two API processes on one store
    clock = FakeClock()
    try:
        write_v = Registry(writer, ValidatingWebhookConfigurationStrategy())
        write_m = Registry(writer, MutatingWebhookConfigurationStrategy())
        read_v = Registry(reader, ValidatingWebhookConfigurationStrategy())
        read_m = Registry(reader, MutatingWebhookConfigurationStrategy())
        await write_v.create("", validating("b-config", "b.hook.io"))
        await write_v.create("", validating("a-config", "a.hook.io", "a2.hook.io"))

        # A watch that breaks at the event of the object named "break-me".
        real_watch = read_v.watch
        broken = 0

        async def breaking_watch(namespace: str, after_revision: int,
                                 ) -> AsyncIterator[tuple[EventType, Obj, Obj | None]]:
            nonlocal broken
            async for event in real_watch(namespace, after_revision):
                if event[1]["metadata"]["name"] == "break-me" and not broken:
                    broken += 1
                    raise RuntimeError("the watch ended")
                yield event

        read_v.watch = breaking_watch  # type: ignore[method-assign]
        view = WebhookConfigurations(lambda: read_v, lambda: read_m, clock)
        assert (view.ready, view.empty, view.validating(), view.mutating()) == (
            False, False, [], [])

        task = asyncio.create_task(view.run())
        try:
            await until(lambda: view.ready, "the first lists")
            assert names(view.validating()) == ["a-config", "b-config"], "sorted by name"
            assert view.mutating() == [] and not view.empty
            assert view.validating()[0]["webhooks"][0]["timeoutSeconds"] == 10, "as stored"

            # Writes through the other process arrive by the watch.
            await write_m.create("", mutating("m-config", "m.hook.io"))
            await write_v.delete("", "a-config")
            current = await write_v.get("", "b-config")
            current["webhooks"].append(validating("x", "b2.hook.io")["webhooks"][0])
            await write_v.update("", "b-config", current)
            await until(lambda: names(view.mutating()) == ["m-config"], "the mutating create")
            await until(lambda: len(view.validating()) == 1
                        and len(view.validating()[0]["webhooks"]) == 2, "the update")
            assert names(view.validating()) == ["b-config"]

            # The watch breaks: the view is not ready (the caller reads the store) until a
            # new list is in, which has what happened meanwhile.
            await write_v.create("", validating("break-me", "k.hook.io"))
            await until(lambda: not view.ready, "the broken watch")
            assert view.validating() == [] and not view.empty
            await write_v.delete("", "b-config")
            await until(lambda: clock.sleeping() > 0, "the relist delay")
            clock.advance(RELIST_DELAY)
            await until(lambda: view.ready, "the new list")
            assert names(view.validating()) == ["break-me"]
            assert names(view.mutating()) == ["m-config"], "the other kind's watch went on"
            assert broken == 1

            # Deleting everything makes the view empty; it stays ready.
            await write_v.delete("", "break-me")
            await write_m.delete("", "m-config")
            await until(lambda: view.empty, "an empty view")
            assert view.ready and view.validating() == view.mutating() == []
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert not view.ready and not view.empty, "a stopped view is not used"
    finally:
        await writer.close()
        await reader.close()


async def test_the_lists_handed_out_are_the_callers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "one.db")
    try:
        registry_v = Registry(store, ValidatingWebhookConfigurationStrategy())
        registry_m = Registry(store, MutatingWebhookConfigurationStrategy())
        await registry_v.create("", validating("v", "v.hook.io"))
        view = WebhookConfigurations(lambda: registry_v, lambda: registry_m, FakeClock())
        task = asyncio.create_task(view.run())
        try:
            await until(lambda: view.ready, "the first lists")
            first = view.validating()
            first.clear()  # a caller's list: the view's own order is untouched
            assert names(view.validating()) == ["v"]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await store.close()
