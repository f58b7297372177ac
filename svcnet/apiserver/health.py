"""/healthz, /livez and /readyz with named checks, as kube-apiserver serves them.

Theory of operation
-------------------
Follows k8s.io/apiserver/pkg/server/healthz/healthz.go. Each endpoint runs a fixed list of named
checks:

* ``/livez``: ``ping`` (the process answers). The store is not part of liveness: restarting a
  server because its store is away would not bring the store back;
* ``/readyz``: ``ping``, ``etcd`` (the store answers a read of one key within
  :data:`STORE_CHECK_TIMEOUT`, as kube-apiserver's etcd check reads ``<prefix>/health`` with a
  2 s timeout) and ``shutdown`` (fails once the server has begun to stop, so load balancers
  drain it first);
* ``/healthz`` (deprecated upstream): ``ping`` and ``etcd``.

The answer is ``ok`` (200) when every check passes; with ``?verbose`` one line per check
(``[+]etcd ok``) and ``readyz check passed``. When a check fails the answer is 500 with every
line (``[-]etcd failed: reason withheld``: the endpoints are public, so reasons stay out) and
``readyz check failed``. ``?exclude=NAME`` skips a check (``[+]NAME excluded: ok``).
``/readyz/NAME`` runs one check: ``ok``, or 500 ``internal server error: REASON``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from svcnet.storage.interface import Store

STORE_CHECK_TIMEOUT = 2.0
STORE_CHECK_KEY = "/registry/health"

Check = Callable[[], Awaitable[None]]
"""Raises (any exception, its text the reason) when unhealthy."""


@dataclass(frozen=True, slots=True)
class NamedCheck:
    name: str
    check: Check


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    error: str | None  # None: passed
    excluded: bool = False


def render(endpoint: str, results: Sequence[Result], *, verbose: bool) -> tuple[int, str]:
    """Pure: the status code and body for ``endpoint`` (``readyz``...) given the results."""
    lines = []
    for r in results:
        if r.excluded:
            lines.append(f"[+]{r.name} excluded: ok\n")
        elif r.error is None:
            lines.append(f"[+]{r.name} ok\n")
        else:
            lines.append(f"[-]{r.name} failed: reason withheld\n")
    if any(r.error is not None and not r.excluded for r in results):
        return 500, "".join(lines) + f"{endpoint} check failed\n"
    if not verbose:
        return 200, "ok"
    return 200, "".join(lines) + f"{endpoint} check passed\n"


async def run_check(check: NamedCheck) -> Result:
    try:
        await check.check()
    except Exception as e:
        return Result(check.name, str(e) or type(e).__name__)
    return Result(check.name, None)


async def ping() -> None:
    return None


def store_check(store: Callable[[], Store]) -> Check:
    """A bounded-time read of one key through the store contract."""
    async def check() -> None:
        try:
            await asyncio.wait_for(store().get(STORE_CHECK_KEY), STORE_CHECK_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"the store did not answer within {STORE_CHECK_TIMEOUT:g}s"
                               ) from None
    return check


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "no-cache, private"})


def add_routes(router: web.UrlDispatcher, endpoint: str, checks: Sequence[NamedCheck]) -> None:
    """Serve ``/ENDPOINT`` and ``/ENDPOINT/CHECK`` for each check."""
    async def all_checks(request: web.Request) -> web.Response:
        excluded = set(request.query.getall("exclude", []))
        results = await asyncio.gather(*(
            run_check(c) if c.name not in excluded else _skipped(c) for c in checks))
        status, body = render(endpoint, results, verbose="verbose" in request.query)
        return _text(status, body)

    router.add_get(f"/{endpoint}", all_checks)
    for c in checks:
        router.add_get(f"/{endpoint}/{c.name}", _one(c))


async def _skipped(check: NamedCheck) -> Result:
    return Result(check.name, None, excluded=True)


def _one(check: NamedCheck) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        result = await run_check(check)
        if result.error is None:
            return _text(200, "ok")
        return _text(500, f"internal server error: {result.error}\n")
    return handler
