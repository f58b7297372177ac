"""The cluster's identity, shared by every API server on one store.

Theory of operation
-------------------
Servers on one store are one cluster: they trust the same CA, sign ServiceAccount tokens with
the same key and accept the same bearer tokens, as kube-apiservers given the same
``--client-ca-file``, ``--service-account-key-file`` and ``--token-auth-file`` do (kubeadm
copies those files between control-plane nodes; its ``upload-certs`` keeps them in a Secret).
Here the first server publishes them under one reserved store key, :data:`IDENTITY_KEY`,
outside the ``/registry/`` tree the API serves; every later server adopts them:

* :data:`SHARED_FILES` of the data directory (the CA's certificate and key, the
  ServiceAccount key, the admin token) are the record's ``files``. At start
  (:func:`join_cluster`), a server on a store without the record makes whichever of those
  files it lacks (a data directory that has them keeps them: they become the cluster's) and
  *creates* the record: create-if-absent, so of two servers starting at once on an empty
  store one record wins, and the loser adopts it, replacing only the files it made in that
  same start. A server on a store with the record writes the files it lacks; a file it has
  that differs from the record (a data directory of another cluster) stops the start with
  :class:`IdentityConflict` rather than replace a CA that existing kubeconfigs pin. Each server
  issues its own serving certificate from the shared CA (certs.py), for its own addresses.
* the lines of ``tokens.csv`` (the admin's, the nodes' that ``svcnet up`` adds to one
  server's file) are the record's ``tokens``: :func:`sync_tokens` (at start and in each
  server's bootstrap loop) adds the local lines the record lacks, with a conditional update,
  and appends to the local file the lines only the record has. Lines are only ever added, so
  a token removed from one server's file stays valid on the others (remove it from the
  record too; docs/HA.md).

Anyone who can read the store can read the CA key, as with etcd holding kube-apiserver's
Secrets: the store must be reachable by the control plane only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from svcnet.apiserver.certs import ensure_ca, ensure_token
from svcnet.apiserver.satokens import ensure_signing_key
from svcnet.storage.interface import Conflict, KeyExists, Store

log = logging.getLogger(__name__)

IDENTITY_KEY = "/svcnet/cluster-identity"
SHARED_FILES = ("pki/ca.crt", "pki/ca.key", "pki/sa.key", "admin.token")
ISSUED_FROM_CA = ("pki/apiserver.crt", "pki/apiserver.key", "pki/apiserver-kubelet-client.crt",
                  "pki/apiserver-kubelet-client.key")
"""Certificates this server issued from its CA: stale once the CA is replaced by adoption."""


class IdentityConflict(Exception):
    """The data directory belongs to another cluster than the store's."""


@dataclass(frozen=True)
class Identity:
    files: Mapping[str, str]
    tokens: tuple[str, ...] = ()
    revision: int = field(default=0, compare=False)

    def encode(self) -> bytes:
        return json.dumps({"files": dict(self.files), "tokens": list(self.tokens)},
                          sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes, revision: int) -> Identity:
        doc = json.loads(value)
        return cls({str(k): str(v) for k, v in doc["files"].items()},
                   tuple(str(t) for t in doc.get("tokens") or ()), revision)


def plan_adoption(stored: Mapping[str, str], local: Mapping[str, str | None],
                  replaceable: frozenset[str]) -> dict[str, str]:
    """The files to write so that the data directory holds the cluster's ``stored`` files:
    those it lacks and those it made itself just now (``replaceable``). Raises
    IdentityConflict for one it had that differs."""
    writes = {}
    for name, content in stored.items():
        have = local.get(name)
        if have == content:
            continue
        if have is not None and name not in replaceable:
            raise IdentityConflict(
                f"{name} in this data directory differs from the cluster's in the store: the "
                "directory belongs to another cluster (join with an empty --data-dir)")
        writes[name] = content
    return writes


def merge_tokens(stored: tuple[str, ...], local: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """(the record's lines with the local ones it lacks, the record's lines the local file
    lacks), each in first-seen order."""
    merged = stored + tuple(line for line in dict.fromkeys(local) if line not in stored)
    missing = [line for line in merged if line not in local]
    return merged, missing


def _read(data_dir: Path) -> dict[str, str | None]:
    files: dict[str, str | None] = {}
    for name in SHARED_FILES:
        path = data_dir / name
        files[name] = path.read_text() if path.exists() else None
    return files


def _write_private(path: Path, content: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.replace(tmp, path)


async def _get(store: Store) -> Identity | None:
    kv = await store.get(IDENTITY_KEY)
    return None if kv is None else Identity.decode(kv.value, kv.mod_revision)


async def join_cluster(store: Store, data_dir: Path) -> None:
    """Make ``data_dir``'s shared files the cluster's (see the module docstring)."""
    made: frozenset[str] = frozenset()
    identity = await _get(store)
    if identity is None:
        before = _read(data_dir)
        ensure_ca(data_dir)
        ensure_signing_key(data_dir / "pki" / "sa.key")
        ensure_token(data_dir / "admin.token")
        files = {name: content for name, content in _read(data_dir).items() if content}
        made = frozenset(name for name, content in before.items() if content is None)
        try:
            await store.create(IDENTITY_KEY, Identity(files).encode())
            log.info("published this server's CA, keys and admin token as the cluster's")
            return
        except KeyExists:
            identity = await _get(store)
            assert identity is not None
    writes = plan_adoption(identity.files, _read(data_dir), made)
    if not writes:
        return
    if "pki/ca.crt" in writes or "pki/ca.key" in writes:
        for name in ISSUED_FROM_CA:
            (data_dir / name).unlink(missing_ok=True)
    (data_dir / "pki").mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, content in writes.items():
        _write_private(data_dir / name, content)
    log.info("joined the cluster on this store: adopted %s", ", ".join(sorted(writes)))


async def sync_tokens(store: Store, tokens_path: Path) -> None:
    """Exchange token lines between ``tokens_path`` and the record (one round; a conflicting
    writer is caught up with at the next)."""
    identity = await _get(store)
    if identity is None:
        return
    local = ([line for line in tokens_path.read_text().splitlines() if line.strip()]
             if tokens_path.exists() else [])
    merged, missing = merge_tokens(identity.tokens, local)
    if missing:
        # Appended, not rewritten: a line a provisioner appends meanwhile is not lost.
        text = tokens_path.read_text() if tokens_path.exists() else ""
        lead = "\n" if text and not text.endswith("\n") else ""
        fd = os.open(tokens_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(lead + "".join(line + "\n" for line in missing))
    if merged != identity.tokens:
        try:
            await store.update(IDENTITY_KEY, Identity(identity.files, merged).encode(),
                               identity.revision)
        except Conflict:
            log.info("the cluster's tokens changed meanwhile; merging again next round")
