"""The ServiceAccount tokens of a node's pods: requested, cached, refreshed and forgotten.

Theory of operation
-------------------
The kubelet's token manager (pkg/kubelet/token/token_manager.go) behind the projected volume
plugin's ``serviceAccountToken`` source (pkg/volume/projected/projected.go):

* :meth:`TokenManager.track` is called with the node's pods before every pod sync, next to
  :meth:`~svcnet.node.objects.ObjectWatcher.track`. For every token a live pod's volumes hold
  (:func:`~svcnet.node.volumes.pod_token_keys`: namespace, ServiceAccount, pod name and uid,
  audience, expiration) that is not cached yet, or whose cached one
  :func:`requires_refresh`, it asks the TokenRequest API —
  ``POST /api/v1/namespaces/NS/serviceaccounts/SA/token`` with the audience (none: the API
  server's), ``expirationSeconds`` and ``boundObjectRef`` naming the pod — all requests of
  one sync at once, each bounded by :data:`REQUEST_TIMEOUT`; a token whose request failed is
  asked for again after a back-off (0.5 s doubling up to 122 s, the kubelet's for volume
  operations), so pod syncs do not hammer an API that is down. Tokens of pods that are gone
  (deleted, finished, or terminating) are dropped from the cache at once, as the kubelet's
  ``DeleteServiceAccountToken`` does on pod removal: the agent keeps no token of a dead pod.
* :meth:`TokenManager.lookup` is the :data:`~svcnet.node.volumes.TokenLookup` the pure volume
  code uses, answering from the cache only: the token; or, when none could be had, the
  kubelet's ``failed to fetch token: <error>`` (``serviceaccounts "x" not found``, the API
  unreachable, ...), which the pod runner reports as ``FailedMount`` while the pod's
  containers wait; or ``token <key> expired and refresh failed: <error>``. A refresh that
  fails while the cached token is still valid keeps serving that token, as upstream does.
* A refreshed token differs from the one in the volume, so the runner's next write replaces
  the file atomically (:mod:`.atomicwriter`). The pod loop runs at least every 30 seconds,
  so a token is renewed within that much of its refresh time (the kubelet's periodic pod
  sync is 60-90 seconds).

:func:`requires_refresh` is upstream's ``requiresRefresh``: a token is renewed once it is
older than 80 % of its lifetime, or older than 24 hours, each brought forward by a random
jitter of up to 10 whole seconds (so that many pods' tokens do not renew in one burst).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from svcnet.api.errors import StatusError
from svcnet.client.rest import SERVICEACCOUNTS, TransportError
from svcnet.node.objects import needs_config
from svcnet.node.volumes import TokenKey, VolumeError, pod_token_keys
from svcnet.util.clock import Clock, RealClock, parse_time

__all__ = ["MAX_TTL", "Token", "TokenManager", "requires_refresh"]

log = logging.getLogger(__name__)

MAX_TTL: Final = timedelta(hours=24)
MAX_JITTER: Final = 10.0
REQUEST_TIMEOUT: Final = 10.0
"""Longest wait for one TokenRequest answer (the pod sync waits for it)."""
RETRY_INITIAL: Final = 0.5
RETRY_MAX: Final = 122.0
"""The back-off between failed requests of one token (the kubelet's volume operations':
500 ms doubling up to 2 min 2 s)."""


@dataclass(frozen=True, slots=True)
class Token:
    """A TokenRequest's answer: the token, when it expires, the lifetime it was issued for."""

    token: str
    expires: datetime
    expiration_seconds: int


def requires_refresh(token: Token, now: datetime, jitter: float = 0.0) -> bool:
    """Whether a cached token is due for renewal (upstream's ``requiresRefresh``)."""
    lifetime = timedelta(seconds=token.expiration_seconds)
    issued = token.expires - lifetime
    early = timedelta(seconds=int(jitter))
    if now > issued + MAX_TTL - early:
        return True
    return now > token.expires - timedelta(seconds=token.expiration_seconds * 20 // 100) - early


def parse_answer(answer: Mapping[str, Any], key: TokenKey) -> Token:
    """The token of a TokenRequest answer (ValueError if it has none)."""
    status = answer.get("status") or {}
    spec = answer.get("spec") or {}
    token = status.get("token") if isinstance(status, Mapping) else None
    expires = parse_time(status.get("expirationTimestamp")) if isinstance(
        status, Mapping) else None
    if not isinstance(token, str) or not token or expires is None:
        raise ValueError("the TokenRequest answer has no token or expiration")
    seconds = spec.get("expirationSeconds") if isinstance(spec, Mapping) else None
    return Token(token, expires, seconds if isinstance(seconds, int) and seconds > 0
                 else key.expiration_seconds)


def token_request(key: TokenKey) -> dict[str, Any]:
    """The TokenRequest the projected volume plugin sends for ``key``."""
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"namespace": key.namespace},
            "spec": {"audiences": [key.audience] if key.audience else [],
                     "expirationSeconds": key.expiration_seconds,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                        "name": key.pod_name, "uid": key.pod_uid}}}


class Requester(Protocol):
    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any: ...


class TokenManager:
    def __init__(self, client: Requester, *, clock: Clock | None = None,
                 jitter: Callable[[], float] | None = None,
                 timeout: float = REQUEST_TIMEOUT) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self._jitter = jitter or (lambda: random.uniform(0.0, MAX_JITTER))
        self._timeout = timeout
        self._tokens: dict[TokenKey, Token] = {}
        self._errors: dict[TokenKey, str] = {}
        self._backoff: dict[TokenKey, tuple[float, float]] = {}
        """Key → (last delay, monotonic time before which it is not asked for again)."""

    def cached(self) -> set[TokenKey]:
        return set(self._tokens)

    def lookup(self, key: TokenKey) -> str:
        """The cached token for ``key``, or :class:`VolumeError` with the kubelet's words."""
        token = self._tokens.get(key)
        error = self._errors.get(key, "no token requested yet")
        if token is None:
            raise VolumeError(f"failed to fetch token: {error}")
        if self._clock.now() > token.expires:
            raise VolumeError(f"token {_describe(key)} expired and refresh failed: {error}")
        return token.token

    async def track(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Request the tokens live ``pods`` need and do not have (or must renew); forget the
        tokens of every other pod."""
        wanted: set[TokenKey] = set()
        for pod in pods:
            if needs_config(pod):
                wanted |= pod_token_keys(pod)
        for key in set(self._tokens) - wanted:
            del self._tokens[key]
        for key in set(self._errors) - wanted:
            del self._errors[key]
        for key in set(self._backoff) - wanted:
            del self._backoff[key]
        now, mono = self._clock.now(), self._clock.monotonic()
        due = sorted((k for k in wanted
                      if (k not in self._tokens
                          or requires_refresh(self._tokens[k], now, self._jitter()))
                      and self._backoff.get(k, (0.0, mono))[1] <= mono),
                     key=_describe)
        if due:
            await asyncio.gather(*(self._request(k) for k in due))

    async def _request(self, key: TokenKey) -> None:
        path = SERVICEACCOUNTS.path(key.namespace, key.service_account, "token")
        try:
            answer = await asyncio.wait_for(
                self._client.request("POST", path, body=token_request(key)), self._timeout)
            token = parse_answer(answer if isinstance(answer, Mapping) else {}, key)
        except (StatusError, TransportError, ValueError) as exc:
            self._failed(key, str(exc))
            return
        except TimeoutError:
            self._failed(key, f"POST {path}: no answer in {self._timeout:g}s")
            return
        self._tokens[key] = token
        self._errors.pop(key, None)
        self._backoff.pop(key, None)
        log.info("token for %s: renewed, expires %s", _describe(key), token.expires)

    def _failed(self, key: TokenKey, error: str) -> None:
        if self._errors.get(key) != error:
            log.warning("token for %s: %s", _describe(key), error)
        self._errors[key] = error
        last = self._backoff.get(key, (0.0, 0.0))[0]
        delay = min(last * 2, RETRY_MAX) if last else RETRY_INITIAL
        self._backoff[key] = (delay, self._clock.monotonic() + delay)


def _describe(key: TokenKey) -> str:
    """A key as logs and messages show it (never the token)."""
    return (f"{key.namespace}/{key.service_account} for pod {key.pod_name} ({key.pod_uid}), "
            f"audience {key.audience or '<api>'}, {key.expiration_seconds}s")
