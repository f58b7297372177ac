"""Creating and deleting a controller's pods, with its events and expectations: one home for
what the ReplicaSet (and ReplicationController), DaemonSet and Job controllers share.

Theory of operation
-------------------
Followed: pkg/controller/controller_utils.go (``RealPodControl``: ``CreatePods`` and
``DeletePod`` record ``SuccessfulCreate`` "Created pod: NAME" / ``FailedCreate`` "Error
creating: ERR" and ``SuccessfulDelete`` "Deleted pod: NAME" / ``FailedDelete`` "Error
deleting: ERR" on the owner; ``slowStartBatch``).

The caller expects its creations and deletions first (``ControllerExpectations``) and the pod
informer observes them; whatever will never be observed is told here: a creation that failed
(or was never attempted after an earlier batch failed) and a deletion that failed. A create
refused because the namespace is being deleted is not an error worth an event (every one would
fail until the namespace is gone). Deletions carry the pod's UID as a precondition, so a pod
replaced under the same name is not deleted by mistake; a pod already gone (404) is no failure.
The StatefulSet controller words its events its own way (upstream's ``StatefulPodControl``)
and does not use this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from svcnet.api.errors import StatusError, is_namespace_terminating
from svcnet.client.informer import object_key
from svcnet.client.rest import PODS, Preconditions

if TYPE_CHECKING:
    from svcnet.client.events import EventRecorder
    from svcnet.controllers.ownership import WorkloadClient
    from svcnet.controllers.replicaset import ControllerExpectations

Obj = dict[str, Any]

SLOW_START_INITIAL_BATCH_SIZE = 1
"""slowStartBatch's first batch (controller_utils.go's SlowStartInitialBatchSize)."""


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH_SIZE) -> list[int]:
    """The batch sizes slowStartBatch uses for ``count`` calls: 1, 2, 4, ... (the last cut)."""
    sizes: list[int] = []
    remaining = count
    size = min(remaining, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _namespace(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


class PodControl:
    """The pods of one controller's owners (see the module docstring)."""

    def __init__(self, client: WorkloadClient, recorder: EventRecorder,
                 expectations: ControllerExpectations) -> None:
        self._client = client
        self.recorder = recorder
        self.expectations = expectations

    async def create(self, key: str, owner: Obj, pod: Obj) -> None:
        """Create ``pod`` for ``owner`` (its creation already expected under ``key``)."""
        try:
            created = await self._client.create(PODS, pod, namespace=_namespace(owner))
        except StatusError as e:
            self.expectations.creation_observed(key)  # it will never be observed
            if is_namespace_terminating(e):
                return
            await self.recorder.warning(owner, "FailedCreate", f"Error creating: {e}")
            raise
        await self.recorder.normal(owner, "SuccessfulCreate", f"Created pod: {_name(created)}")

    async def create_many(self, key: str, owner: Obj, count: int,
                          make_pod: Callable[[], Obj]) -> None:
        """Expect and create ``count`` pods in slow-start batches (1, 2, 4, ...): after a
        batch with a failure no more are tried, and the first failure is raised."""
        if count <= 0:
            return
        self.expectations.expect_creations(key, count)
        attempted = 0
        for size in slow_start_batches(count):
            results = await asyncio.gather(
                *(self.create(key, owner, make_pod()) for _ in range(size)),
                return_exceptions=True)
            attempted += size
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                for _ in range(count - attempted):  # never attempted: never observed
                    self.expectations.creation_observed(key)
                first = failures[0]
                raise first if isinstance(first, Exception) else RuntimeError(str(first))

    async def delete(self, key: str, owner: Obj, pod: Obj) -> None:
        """Delete ``pod`` of ``owner`` (its deletion already expected under ``key``)."""
        try:
            await self._client.delete(PODS, _namespace(pod), _name(pod),
                                      preconditions=Preconditions(
                                          uid=str((pod.get("metadata") or {}).get("uid", ""))))
        except StatusError as e:
            self.expectations.deletion_observed(key, object_key(pod))  # never observed
            if e.code == 404:
                return
            await self.recorder.warning(owner, "FailedDelete", f"Error deleting: {e}")
            raise
        await self.recorder.normal(owner, "SuccessfulDelete", f"Deleted pod: {_name(pod)}")

    async def delete_many(self, key: str, owner: Obj, pods: Sequence[Obj]) -> None:
        """Expect and delete ``pods`` concurrently; the first failure is raised."""
        if not pods:
            return
        self.expectations.expect_deletions(key, [object_key(p) for p in pods])
        results = await asyncio.gather(*(self.delete(key, owner, p) for p in pods),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r if isinstance(r, Exception) else RuntimeError(str(r))
