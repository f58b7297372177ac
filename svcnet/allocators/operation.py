"""An allocation operation around one object write: allocate now, release after, or roll back.

Kubernetes' rule (portallocator/operation.go): it is better to leak than to double-allocate.
New items are taken *before* the owner is written, so a crash in between leaks them (repair
collects leaks) but never lets two owners hold one item. Items the write gives up are released
only *after* the write succeeded, so a failed write leaves the old owner holding everything it
had. A dry run writes nothing (upstream's dry-run allocator): it checks that a requested item
is free and picks a free one without taking it, so no other request ever sees a dry run's
record (an IPAddress object, for a ClusterIP). A write whose outcome is unknown (the store
timed out or the connection went away after the request was sent: it may or may not have
applied it) is *abandoned*: nothing is released either way, and repair settles the records
against what the store holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svcnet.allocators.allocator import Owner, StoreAllocator


@dataclass
class Operation:
    dry_run: bool = False
    #: A create's object name as its request gave it ("" when the server generates it from
    #: generateName; None when not told): admission errors name an object this way.
    requested_name: str | None = None
    #: Whether the strategy's in-process mutating admission already ran (before the
    #: webhooks; registry/generic.py).
    admitted: bool = False
    _taken: list[tuple[StoreAllocator, str, Owner]] = field(default_factory=list)
    _releases: list[tuple[StoreAllocator, str, Owner]] = field(default_factory=list)
    _done: bool = False

    async def allocate(self, allocator: StoreAllocator, item: str, owner: Owner) -> None:
        if self.dry_run:
            await allocator.check(item)
            return
        await allocator.allocate(item, owner)
        self._taken.append((allocator, item, owner))

    async def allocate_next(self, allocator: StoreAllocator, owner: Owner) -> str:
        if self.dry_run:
            return await allocator.peek_next()
        item = await allocator.allocate_next(owner)
        self._taken.append((allocator, item, owner))
        return item

    def release_after_commit(self, allocator: StoreAllocator, item: str, owner: Owner) -> None:
        self._releases.append((allocator, item, owner))

    @property
    def taken(self) -> list[str]:
        return [item for _, item, _ in self._taken]

    def abandon(self) -> None:
        """The write may or may not have happened: keep every record (leak, never double)."""
        self._done = True

    async def finish(self, success: bool) -> None:
        """Commit (release what the write gave up) or roll back (release what we took)."""
        if self._done:
            return
        self._done = True
        todo = self._releases if success and not self.dry_run else list(reversed(self._taken))
        for allocator, item, owner in todo:
            # A failure here leaks the item until repair sees it; never worse.
            try:
                await allocator.release(item, owner)
            except Exception:  # best effort by design, see the module docstring
                continue
