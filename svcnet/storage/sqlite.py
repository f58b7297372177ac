"""SQLiteStore: a kine-style, watchable, multi-process-safe store in one SQLite file.

Theory of operation
-------------------
Tables (see ``_SCHEMA``):

* ``log`` is an append-only change log, one row per revision: ``rev`` (INTEGER PRIMARY KEY
  AUTOINCREMENT, *is* the store revision), ``key``, ``created``/``deleted`` flags,
  ``create_rev``, ``prev_rev`` (the key's previous row; 0 for a key's first create), ``value``
  (for a deletion: the last value) and ``prev_value``. ``UNIQUE(key, prev_rev)`` is kine's
  optimistic-concurrency guard: a version can have only one successor, so two writers starting
  from the same revision can never both append. (Our writers are already serialised, below;
  the index is the second line of defence, and it also finds a key's latest row quickly, since
  ``prev_rev`` grows along a key's chain.)
* ``current`` (key -> rev, create_rev, value) mirrors the newest live row of each key, updated in
  the same transaction, so get/list/count at "now" never touch the log.
* ``meta`` holds ``compact_rev``.

Writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken *before* the compare, so
read-compare-append is atomic across threads **and processes** sharing the file, and two
servers can never both create one key or both update from one revision. The next revision is
``sqlite_sequence.seq + 1`` read under that lock. The store revision is that sequence, not
``max(rev)``: compaction may delete the newest rows (tombstones), but the sequence never goes
back, so a revision is never reused.

Group commit: write calls queue up, and the worker runs everything queued so far in one
transaction (each write in its own SAVEPOINT, so a failed compare undoes only that write), then
COMMITs once. A lone writer sees no difference; many concurrent writers share one fsync, which
is what keeps latency flat under load. No caller hears "done" before the COMMIT that made its
write durable.

Durability: WAL with ``synchronous=FULL`` (the default) fsyncs the WAL on every commit, so a
write is on disk before its call returns (survives power loss). ``NORMAL`` also survives a
killed process (the OS has the data) but may lose the last commits on power loss; it is faster.

Threads: every SQLite call runs on one dedicated worker thread (a one-thread executor) that owns
the connection, so the event loop never waits on a file lock or an fsync. Worker-only state:
``_conn``, ``_seen_rev``, ``_data_version``. Loop-only state: ``_published_rev`` and the
broadcaster.

Watch: events reach the broadcaster in revision order through one cursor, ``_seen_rev`` (the
newest revision handed to the loop), advanced only on the worker:

* local writes are published right after their COMMIT. If the sequence at the start of the
  transaction is past ``_seen_rev``, other processes committed in between; their rows are read
  inside the same transaction (under the write lock all of them are visible) and published
  first;
* a poll loop (every ``poll_interval``) picks up other processes' writes: rows with
  ``rev > _seen_rev``. It queries only when ``PRAGMA data_version`` says another connection
  committed. Polling by "rev > cursor" cannot miss a row: SQLite has one writer at a time and the
  revision is allocated under that lock, so rows become visible in revision order, and a lower
  revision can never appear after a higher one was seen. (kine must detect gaps and write
  "fill" rows because MySQL/Postgres allocate ids concurrently; SQLite does not.)

The worker hands batches to the loop with ``call_soon_threadsafe``, which is FIFO, so
publication order equals worker order equals revision order; and a write's event is published
before its caller resumes. A watch subscribes, notes ``live_from = _published_rev``, replays log
rows in ``(after, live_from]`` in batches (re-checking ``compact_rev`` in the same read
transaction as each batch), then streams live events (see :mod:`svcnet.storage.broadcaster`).
If another process compacts past ``_seen_rev`` before this one saw those rows, events may be
lost, so every live watch here is dropped with WatchClosed (it re-watches, and gets Compacted
if it must relist).

Compaction keeps whatever a read at a revision ``>= target`` needs: it deletes, in short
batches of revisions, each row superseded by a row at or below the target, plus tombstones at or
below it; ``compact_rev`` advances in the same transaction as each batch.

Failures: an SQLite error that means "cannot serve now" (disk full, I/O error, a read-only
file, the lock held by another process beyond ``busy_timeout``) raises :class:`Unavailable`,
anything else a plain StorageError. A write is all or nothing: a failed write's SAVEPOINT is
rolled back, and a failed BEGIN or COMMIT (or SQLite rolling the transaction back itself, as it
may on a full disk) fails every write of the batch with nothing stored and nothing published.

Checkpoints: SQLite copies the WAL's pages back into the database file (a checkpoint, with an
fsync of the file) by itself in whichever commit finds the WAL past 1000 pages, inside that
writer's transaction: under a write load, every few seconds one commit took 30-75 ms instead
of 1, and with it every writer queued behind the write lock. The store turns that off
(``wal_autocheckpoint=0``) and checkpoints from a thread and connection of its own every
:data:`CHECKPOINT_INTERVAL`: a ``PASSIVE`` checkpoint, which copies what is committed while
writers go on appending. SQLite starts the WAL over only when a writer finds it entirely
copied back, which a steady load never lets happen, so once the WAL holds
:data:`CHECKPOINT_FRAMES` pages the checkpointer takes the writers' turn (below) and copies
the few pages written since its pass: writers wait for that short step only, and the next one
starts the WAL over (unless a reader still needs it, as with SQLite's own checkpoints). Each
process on the file has its checkpointer; SQLite runs one checkpoint at a time and a busy one
is simply tried again next pass.

Opening and closing: the constructor does no I/O. The database is opened lazily by the first
operation, or explicitly (to surface errors early) with ``await store.open()``; ``async with
SQLiteStore(path) as store:`` opens and closes. ``await store.close()`` is required: it ends
watches, stops the poll loop, closes the connection and joins the worker thread. A database file
the store creates is 0600, and so are its -wal and -shm files (SQLite gives them the database
file's mode), wherever it lives: it holds the whole cluster state.

Why this module is long: One backend of the store contract: the log table, its writer thread,
watch and compaction share one connection's invariants.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar, TypeVarTuple

from svcnet.storage.broadcaster import DEFAULT_BUFFER, Broadcaster, open_watch
from svcnet.storage.interface import (
    Compacted,
    Conflict,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    StorageError,
    Unavailable,
    WatchClosed,
    WatchEvent,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

Synchronous = Literal["FULL", "NORMAL"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS log (
        rev        INTEGER PRIMARY KEY AUTOINCREMENT,
        key        TEXT    NOT NULL,
        created    INTEGER NOT NULL,
        deleted    INTEGER NOT NULL,
        create_rev INTEGER NOT NULL,
        prev_rev   INTEGER NOT NULL,
        value      BLOB    NOT NULL,
        prev_value BLOB
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS log_key_prev_rev ON log (key, prev_rev)",
    # WITHOUT ROWID: rows are stored in key order, so a prefix list is one sequential range scan.
    """CREATE TABLE IF NOT EXISTS current (
        key        TEXT    PRIMARY KEY,
        rev        INTEGER NOT NULL,
        create_rev INTEGER NOT NULL,
        value      BLOB    NOT NULL
    ) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

_LOG_COLUMNS = "rev, key, created, deleted, create_rev, prev_rev, value, prev_value"
_LogRow = tuple[int, str, int, int, int, int, bytes, bytes | None]

REPLAY_BATCH = 1000
"""Log rows per read transaction when a watch replays history or the poll loop catches up."""

COMPACT_BATCH = 1000
"""Revisions per compaction transaction: short write-lock holds keep writers' latency low."""

WRITE_BATCH = 128
"""Most writes one group-commit transaction takes from the queue."""

CHECKPOINT_INTERVAL = 0.1
"""Seconds between the checkpointer's passes (see the module doc, "Checkpoints")."""

CHECKPOINT_FRAMES = 1000
"""WAL frames (pages) from which a pass finishes the checkpoint in the writers' turn, so that
the next write starts the WAL over (SQLite's own ``wal_autocheckpoint`` default)."""

_Events = list[WatchEvent]  # (an alias: inside SQLiteStore, ``list`` is the method)
_WriteOp = Callable[[sqlite3.Connection, int], tuple[KeyValue, WatchEvent]]
"""One write, run on the worker under the write lock at the given revision."""


_UNAVAILABLE_CODES = frozenset({
    sqlite3.SQLITE_BUSY,  # another process held the lock beyond the busy timeout
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY,  # a read-only file or file system
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL,  # disk full
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
})
"""Primary result codes (the low byte of an extended code) that mean "cannot serve now"."""


def _storage_error(e: Exception, what: str = "sqlite") -> Exception:
    """StorageErrors as they are; SQLite's own errors wrapped (one instance per caller):
    :class:`Unavailable` for a database that cannot be read or written right now (disk full,
    I/O error, locked beyond the busy timeout), a plain StorageError otherwise."""
    if isinstance(e, StorageError):
        return e
    code = getattr(e, "sqlite_errorcode", None)
    wrapped: StorageError
    if isinstance(code, int) and code & 0xFF in _UNAVAILABLE_CODES:
        wrapped = Unavailable(f"{what}: {e}")
    else:
        wrapped = StorageError(f"{what}: {e}")
    wrapped.__cause__ = e
    return wrapped


def _event_from_row(row: _LogRow) -> WatchEvent:
    rev, key, created, deleted, create_rev, prev_rev, value, prev_value = row
    kv = KeyValue(key=key, value=value, mod_revision=rev, create_revision=create_rev)
    if created:
        return WatchEvent(EventType.ADDED, kv, None)
    prev = KeyValue(key=key, value=value if prev_value is None else prev_value,
                    mod_revision=prev_rev, create_revision=create_rev)
    return WatchEvent(EventType.DELETED if deleted else EventType.MODIFIED, kv, prev)


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (None: unbounded).

    SQLite compares TEXT bytewise in UTF-8, which orders like Python's code-point comparison,
    so ``prefix <= key < _prefix_end(prefix)`` is an index range equal to ``startswith``.
    """
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return None
    nxt = ord(stem[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates are not encodable; skip the block
        nxt = 0xE000
    return stem[:-1] + chr(nxt)


def _key_range(prefix: str, start_after: str = "") -> tuple[str, list[str]]:
    """A SQL condition on ``key`` (and its parameters) for keys under prefix after start_after."""
    if start_after >= prefix:
        cond, params = "key > ?", [start_after]
    else:
        cond, params = "key >= ?", [prefix]
    end = _prefix_end(prefix)
    if end is not None:
        cond += " AND key < ?"
        params.append(end)
    return cond, params


class SQLiteStore:
    """A :class:`~svcnet.storage.interface.Store` in one SQLite file (see the module docstring).

    ``synchronous``: "FULL" (default, no acknowledged write lost on power loss) or "NORMAL".
    ``poll_interval``: seconds between checks for other processes' writes (watch latency for
    those). ``busy_timeout``: seconds a write waits for another process's lock before failing
    with :class:`Unavailable`. ``watch_buffer``: events a watcher may lag before it is dropped.
    """

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "FULL",
                 poll_interval: float = 0.02, busy_timeout: float = 5.0,
                 watch_buffer: int = DEFAULT_BUFFER) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        if poll_interval <= 0 or busy_timeout < 0:
            raise ValueError("poll_interval must be positive and busy_timeout not negative")
        self.path = Path(path)
        self.synchronous: Synchronous = synchronous
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        self._broadcaster = Broadcaster(watch_buffer)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="svcnet-sqlite")
        # The checkpointer's thread, connection and -writelock descriptor (flock is per open
        # file description: its own, so that it and this process's writer exclude each other).
        self._checkpointer = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="svcnet-sqlite-checkpoint")
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_lock: int | None = None
        # Writes waiting for the worker's next group commit (deque: thread-safe append/pop).
        self._write_queue: deque[tuple[_WriteOp, Future[KeyValue]]] = deque()
        # Worker-thread state.
        self._conn: sqlite3.Connection | None = None
        self._writer_lock: int | None = None  # the -writelock file (_writers_turn)
        self._seen_rev = 0
        self._data_version = -1
        # Event-loop state.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open_task: asyncio.Task[None] | None = None
        self._opened = False
        self._closed = False
        self._open_rev = 0
        self._published_rev: int | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None

    @property
    def _on_disk(self) -> bool:
        """A file (not ``:memory:``): it has a WAL, a -writelock and file modes to keep."""
        return str(self.path) != ":memory:"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the database (idempotent; every operation calls it). Binds the running loop."""
        if self._opened:
            return
        if self._closed:
            raise StorageError("store is closed")
        if self._open_task is None:
            self._loop = asyncio.get_running_loop()
            self._open_task = self._loop.create_task(self._do_open())
        task = self._open_task
        try:
            # Shielded: one caller being cancelled must not abort the open the others wait on.
            await asyncio.shield(task)
        except Exception:
            if task.done() and self._open_task is task:
                self._open_task = None  # let the next call retry
            raise

    async def _do_open(self) -> None:
        assert self._loop is not None
        try:
            rev = await self._loop.run_in_executor(self._executor, self._open_db)
        except sqlite3.Error as e:
            raise _storage_error(e, f"cannot open {self.path}") from e
        self._open_rev = self._published_rev = rev
        self._opened = True
        if not self._closed:  # close() may have been called while this open was under way
            self._poll_task = self._loop.create_task(self._poll_loop(),
                                                     name=f"sqlite-poll:{self.path}")
            if self._on_disk:
                self._checkpoint_task = self._loop.create_task(
                    self._checkpoint_loop(), name=f"sqlite-checkpoint:{self.path}")

    async def close(self) -> None:
        """End watches (WatchClosed), stop polling, close the connection, join the worker."""
        if self._closed:
            return
        self._closed = True
        self._broadcaster.close()
        if self._open_task is not None:
            with contextlib.suppress(Exception):
                await self._open_task  # so that a connection being opened gets closed too
        for task in (self._poll_task, self._checkpoint_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Queued behind the pass under way, if any (one thread, FIFO): a short wait.
        await asyncio.get_running_loop().run_in_executor(self._checkpointer,
                                                         self._close_checkpointer)
        self._checkpointer.shutdown(wait=True)
        if self._open_task is not None:
            # Queued jobs run before this one (FIFO), so nothing touches the connection after.
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_db)
        # The worker is idle now, so this join does not block the loop for long.
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def _call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``fn(*args)`` on the worker thread, mapping SQLite failures to StorageError."""
        await self.open()
        if self._closed:
            raise StorageError("store is closed")
        assert self._loop is not None
        try:
            return await self._loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as e:
            raise _storage_error(e) from e

    # -- reads --------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        return await self._call(self._get_sync, key)

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> ListResult:
        if revision < 0 or limit < 0:
            raise ValueError("revision and limit must not be negative")
        return await self._call(self._list_sync, prefix, revision, limit, start_after)

    async def count(self, prefix: str) -> int:
        return await self._call(self._count_sync, prefix)

    async def current_revision(self) -> int:
        return await self._call(self._current_revision_sync)

    async def compact_revision(self) -> int:
        return await self._call(self._compact_revision_sync)

    # -- writes -------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write(lambda conn, rev: self._create_op(conn, rev, key, value))

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        return await self._write(
            lambda conn, rev: self._update_op(conn, rev, key, value, expected_revision))

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return await self._write(
            lambda conn, rev: self._delete_op(conn, rev, key, expected_revision))

    async def _write(self, op: _WriteOp) -> KeyValue:
        """Queue one write for the worker's next group commit and wait for its outcome."""
        await self.open()
        if self._closed:
            raise StorageError("store is closed")
        request: Future[KeyValue] = Future()
        self._write_queue.append((op, request))
        # One drain job per request; whichever runs first takes everything queued by then, and
        # the rest find the queue empty. If the caller is cancelled before its request is taken,
        # the request is skipped (set_running_or_notify_cancel) and nothing is written.
        self._executor.submit(self._drain_writes)
        return await asyncio.wrap_future(request, loop=self._loop)

    async def compact(self, revision: int) -> None:
        target = await self._call(self._compact_target_sync, revision)
        # One short transaction per batch, each a separate job, so writes interleave.
        while not await self._call(self._compact_batch_sync, target):
            pass

    # -- watch --------------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> AsyncGenerator[WatchEvent, None]:
        if after_revision < 0:
            raise ValueError("after_revision must not be negative")
        sub = self._broadcaster.subscribe(prefix)
        # Before the store is open nothing has been published yet, so "live" starts at the
        # revision the store opens at.
        live_from_now = self._published_rev

        async def start() -> tuple[int, int]:
            await self.open()
            live_from = self._open_rev if live_from_now is None else live_from_now
            return (after_revision or live_from), live_from

        async def replay(after: int, cursor: int,
                         upto: int) -> tuple[Sequence[WatchEvent], int]:
            try:
                if self._closed:
                    raise StorageError("store is closed")
                return await self._call(self._replay_sync, prefix, after, cursor, upto)
            except Compacted:
                raise
            except StorageError:
                if self._closed:  # closed mid-replay: report it the way live watches see it
                    raise WatchClosed("store closed") from None
                raise

        return open_watch(sub, start, replay)

    def _publish(self, events: _Events, upto: int, drop_all: bool) -> None:
        """Loop side of publication (scheduled by the worker, FIFO)."""
        if drop_all:
            self._broadcaster.drop_all(
                "history was compacted by another process before this one delivered it")
        self._broadcaster.publish(events)
        if self._published_rev is None or upto > self._published_rev:
            self._published_rev = upto

    async def _poll_loop(self) -> None:
        assert self._loop is not None
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                while await self._loop.run_in_executor(self._executor, self._poll_sync):
                    pass  # a full batch: more rows are waiting
            except Exception:
                # Keep polling: a dead poll loop would silently freeze cross-process watches.
                logger.exception("polling %s for changes failed", self.path)

    async def _checkpoint_loop(self) -> None:
        assert self._loop is not None
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            try:
                # Shielded: a pass is not abandoned halfway (close waits for it, then closes).
                await asyncio.shield(self._loop.run_in_executor(self._checkpointer,
                                                                self._checkpoint_sync))
            except Exception as e:  # a busy or failing file: the next pass tries again
                logger.debug("checkpointing %s: %s", self.path, e)

    # == checkpointer thread only ================================================================

    def _checkpoint_sync(self) -> None:
        """One checkpoint pass (module doc, "Checkpoints")."""
        if self._checkpoint_conn is None:
            self._checkpoint_conn = sqlite3.connect(self.path, timeout=self._busy_timeout,
                                                    isolation_level=None)
            self._checkpoint_conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._checkpoint_lock = self._open_writelock()
        conn = self._checkpoint_conn
        _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= CHECKPOINT_FRAMES:
            with _turn(self._checkpoint_lock, self._busy_timeout):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _close_checkpointer(self) -> None:
        _close(self._checkpoint_conn, self._checkpoint_lock)
        self._checkpoint_conn = self._checkpoint_lock = None

    # == worker thread only below this line ===================================================

    def _create_private(self) -> None:
        """Create the database file 0600 if it is missing: SQLite gives its -wal and -shm
        files the database file's mode, and would otherwise create all three 0644 (umask
        permitting), readable by every local user wherever the file lives."""
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def _open_db(self) -> int:
        if self._on_disk:
            self._create_private()
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            self._set_wal(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            if self._on_disk:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('compact_rev', 0)")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # data_version first: a commit landing between the two reads then causes one extra
            # poll query, never a missed one.
            (self._data_version,) = conn.execute("PRAGMA data_version").fetchone()
            self._seen_rev = self._seq(conn)
        except BaseException:
            conn.close()
            raise
        if self._on_disk:
            self._writer_lock = self._open_writelock()
        self._conn = conn
        return self._seen_rev

    @staticmethod
    def _set_wal(conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite may report "locked"
        # without invoking the busy handler when another process opens the same new file at
        # the same moment; retry briefly.
        for attempt in range(100):
            try:
                (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            except sqlite3.OperationalError:
                if attempt == 99:
                    raise
                time.sleep(0.01)
                continue
            if str(mode).lower() != "wal":
                raise StorageError(f"cannot enable WAL mode (journal_mode is {mode})")
            return

    def _close_db(self) -> None:
        _close(self._conn, self._writer_lock)
        self._conn = self._writer_lock = None

    def _open_writelock(self) -> int:
        """A descriptor of the ``-writelock`` companion file (each connection's own: flock
        is per open file description, see :func:`_turn`)."""
        return os.open(f"{self.path}-writelock", os.O_RDWR | os.O_CREAT, 0o600)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("store is closed")
        return self._conn

    @contextlib.contextmanager
    def _txn(self, mode: Literal["DEFERRED", "IMMEDIATE"]) -> Iterator[sqlite3.Connection]:
        """A transaction; IMMEDIATE takes the write lock up front (needed for read-then-write),
        after the writers' turn (:meth:`_writers_turn`)."""
        conn = self._db
        with self._writers_turn() if mode == "IMMEDIATE" else contextlib.nullcontext():
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _writers_turn(self) -> contextlib.AbstractContextManager[None]:
        """This process's writer's turn among the processes writing the file (:func:`_turn`)."""
        return _turn(self._writer_lock, self._busy_timeout)

    @staticmethod
    def _seq(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _compact_rev(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE name = 'compact_rev'").fetchone()
        return int(row[0]) if row else 0

    def _get_sync(self, key: str) -> KeyValue | None:
        return self._current_kv(self._db, key)

    def _current_kv(self, conn: sqlite3.Connection, key: str) -> KeyValue | None:
        row = conn.execute("SELECT rev, create_rev, value FROM current WHERE key = ?",
                           (key,)).fetchone()
        if row is None:
            return None
        return KeyValue(key=key, value=row[2], mod_revision=row[0], create_revision=row[1])

    def _list_sync(self, prefix: str, revision: int, limit: int,
                   start_after: str) -> ListResult:
        cond, params = _key_range(prefix, start_after)
        limit_sql = f" LIMIT {limit + 1}" if limit else ""
        with self._txn("DEFERRED") as conn:  # one snapshot for the revision and the rows
            current = self._seq(conn)
            compacted = self._compact_rev(conn)
            if revision and revision < compacted:
                raise Compacted(revision, compacted)
            if revision == 0 or revision >= current:
                # A revision in the future is served as "now", and reported as such.
                served_at = current
                rows = conn.execute(
                    f"SELECT key, rev, create_rev, value FROM current WHERE {cond}"
                    f" ORDER BY key{limit_sql}", params).fetchall()
            else:
                served_at = revision
                # Per key, its last row at or below the revision, unless that is a deletion.
                # The inner GROUP BY is a covering scan of the (key, prev_rev) index, which also
                # carries rev (the rowid).
                rows = conn.execute(
                    "SELECT key, rev, create_rev, value FROM log WHERE rev IN"
                    f" (SELECT max(rev) FROM log WHERE {cond} AND rev <= ? GROUP BY key)"
                    f" AND deleted = 0 ORDER BY key{limit_sql}",
                    [*params, revision]).fetchall()
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
        items = [KeyValue(key=k, value=v, mod_revision=r, create_revision=c)
                 for k, r, c, v in rows]
        return ListResult(items=items, revision=served_at, more=more)

    def _count_sync(self, prefix: str) -> int:
        cond, params = _key_range(prefix)
        (n,) = self._db.execute(f"SELECT count(*) FROM current WHERE {cond}", params).fetchone()
        return int(n)

    def _current_revision_sync(self) -> int:
        return self._seq(self._db)

    def _compact_revision_sync(self) -> int:
        return self._compact_rev(self._db)

    def _drain_writes(self) -> None:
        """Run every queued write in one transaction: one fsync for the lot (group commit).

        Each write runs inside its own SAVEPOINT, so a failed check (KeyExists, Conflict, ...)
        or an SQLite error undoes only that write. The events are announced after COMMIT and
        before any caller is told the outcome, so a caller that resumes after its write finds
        the event already published.
        """
        batch: list[tuple[_WriteOp, Future[KeyValue]]] = []
        while self._write_queue and len(batch) < WRITE_BATCH:
            op, request = self._write_queue.popleft()
            if request.set_running_or_notify_cancel():
                batch.append((op, request))
        if not batch:
            return
        outcomes: list[KeyValue | BaseException] = []
        events: _Events = []
        try:
            with self._txn("IMMEDIATE") as conn:
                seq = self._seq(conn)
                backlog, drop = self._unseen(conn, seq)
                rev = seq
                for op, _ in batch:
                    conn.execute("SAVEPOINT write")
                    try:
                        kv, event = op(conn, rev + 1)
                    except Exception as e:
                        if not conn.in_transaction:
                            # SQLite rolled the whole transaction back itself (it may, on a
                            # full disk or an I/O error): every write in the batch failed.
                            raise
                        conn.execute("ROLLBACK TO write")
                        conn.execute("RELEASE write")
                        outcomes.append(_storage_error(e))
                        continue
                    conn.execute("RELEASE write")
                    rev += 1
                    outcomes.append(kv)
                    events.append(event)
        except Exception as e:
            # BEGIN or COMMIT failed (busy timeout, disk full, ...): nothing was written.
            for _, request in batch:
                request.set_exception(_storage_error(e))
            return
        if backlog or events or drop:
            self._announce([*backlog, *events], rev, drop)
        for (_, request), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                request.set_exception(outcome)
            else:
                request.set_result(outcome)

    def _unseen(self, conn: sqlite3.Connection, seq: int) -> tuple[_Events, bool]:
        """Rows other processes committed since our cursor (read under the write lock, where
        all of them are visible), and whether compaction may have hidden some."""
        if seq == self._seen_rev:
            return [], False  # the common case: nobody else wrote since we last looked
        compacted = self._compact_rev(conn)
        rows = conn.execute(f"SELECT {_LOG_COLUMNS} FROM log WHERE rev > ? ORDER BY rev",
                            (self._seen_rev,)).fetchall()
        return [_event_from_row(r) for r in rows], compacted > self._seen_rev

    def _announce(self, events: _Events, upto: int, drop_all: bool) -> None:
        """Advance the cursor and hand the events to the loop (FIFO keeps revision order)."""
        self._seen_rev = upto
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is watching
            self._loop.call_soon_threadsafe(self._publish, events, upto, drop_all)

    @staticmethod
    def _append(conn: sqlite3.Connection, rev: int, key: str, *, created: bool, deleted: bool,
                create_rev: int, prev_rev: int, value: bytes, prev_value: bytes | None) -> None:
        conn.execute(f"INSERT INTO log ({_LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (rev, key, int(created), int(deleted), create_rev, prev_rev, value,
                      prev_value))

    def _create_op(self, conn: sqlite3.Connection, rev: int, key: str,
                   value: bytes) -> tuple[KeyValue, WatchEvent]:
        if conn.execute("SELECT 1 FROM current WHERE key = ?", (key,)).fetchone():
            raise KeyExists(key)
        # A re-created key continues its chain from its tombstone (if not compacted away);
        # along a chain prev_rev grows, so the (key, prev_rev) index finds the newest row.
        last = conn.execute("SELECT rev FROM log WHERE key = ? ORDER BY prev_rev DESC LIMIT 1",
                            (key,)).fetchone()
        self._append(conn, rev, key, created=True, deleted=False, create_rev=rev,
                     prev_rev=last[0] if last else 0, value=value, prev_value=None)
        conn.execute("INSERT INTO current (key, rev, create_rev, value) VALUES (?, ?, ?, ?)",
                     (key, rev, rev, value))
        kv = KeyValue(key=key, value=value, mod_revision=rev, create_revision=rev)
        return kv, WatchEvent(EventType.ADDED, kv, None)

    def _update_op(self, conn: sqlite3.Connection, rev: int, key: str, value: bytes,
                   expected_revision: int) -> tuple[KeyValue, WatchEvent]:
        prev = self._current_kv(conn, key)
        if prev is None:
            raise KeyNotFound(key)
        if prev.mod_revision != expected_revision:
            raise Conflict(key, prev)
        self._append(conn, rev, key, created=False, deleted=False,
                     create_rev=prev.create_revision, prev_rev=prev.mod_revision, value=value,
                     prev_value=prev.value)
        conn.execute("UPDATE current SET rev = ?, value = ? WHERE key = ?", (rev, value, key))
        kv = KeyValue(key=key, value=value, mod_revision=rev,
                      create_revision=prev.create_revision)
        return kv, WatchEvent(EventType.MODIFIED, kv, prev)

    def _delete_op(self, conn: sqlite3.Connection, rev: int, key: str,
                   expected_revision: int) -> tuple[KeyValue, WatchEvent]:
        prev = self._current_kv(conn, key)
        if prev is None:
            raise KeyNotFound(key)
        if expected_revision and prev.mod_revision != expected_revision:
            raise Conflict(key, prev)
        self._append(conn, rev, key, created=False, deleted=True,
                     create_rev=prev.create_revision, prev_rev=prev.mod_revision,
                     value=prev.value, prev_value=prev.value)
        conn.execute("DELETE FROM current WHERE key = ?", (key,))
        kv = KeyValue(key=key, value=prev.value, mod_revision=rev,
                      create_revision=prev.create_revision)
        return kv, WatchEvent(EventType.DELETED, kv, prev)

    def _poll_sync(self, *, force: bool = False) -> bool:
        """Publish other processes' new rows; True if a full batch suggests more are waiting."""
        conn = self._db
        # Read before the query (see _open_db): a commit in between means one extra query.
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if version == self._data_version and not force:
            return False  # no other connection committed since the last look
        with self._txn("DEFERRED"):
            compacted = self._compact_rev(conn)
            rows = conn.execute(f"SELECT {_LOG_COLUMNS} FROM log WHERE rev > ? ORDER BY rev"
                                f" LIMIT {REPLAY_BATCH}", (self._seen_rev,)).fetchall()
        drop = compacted > self._seen_rev
        if rows or drop:
            upto = max(rows[-1][0] if rows else 0, compacted, self._seen_rev)
            self._announce([_event_from_row(r) for r in rows], upto, drop)
        if len(rows) == REPLAY_BATCH:
            return True
        self._data_version = version
        return False

    def _replay_sync(self, prefix: str, after: int, cursor: int,
                     upto: int) -> tuple[_Events, int]:
        cond, params = _key_range(prefix)
        with self._txn("DEFERRED") as conn:  # the compaction check and the rows: one snapshot
            compacted = self._compact_rev(conn)
            if cursor < compacted:
                raise Compacted(after, compacted)
            rows = conn.execute(
                f"SELECT {_LOG_COLUMNS} FROM log WHERE rev > ? AND rev <= ? AND {cond}"
                f" ORDER BY rev LIMIT {REPLAY_BATCH}", [cursor, upto, *params]).fetchall()
        next_cursor = rows[-1][0] if len(rows) == REPLAY_BATCH else max(cursor, upto)
        return [_event_from_row(r) for r in rows], next_cursor

    def _compact_target_sync(self, revision: int) -> int:
        # Publish everything up to now first: history this server has not yet delivered to its
        # own watchers must not be deleted under them.
        while self._poll_sync(force=True):
            pass
        return min(revision, self._seen_rev)

    def _compact_batch_sync(self, target: int) -> bool:
        """Compact the next batch of revisions towards ``target``; True when done."""
        with self._txn("IMMEDIATE") as conn:
            lo = self._compact_rev(conn)  # another server may have compacted meanwhile
            if lo >= target:
                return True
            hi = min(lo + COMPACT_BATCH, target)
            # Rows superseded by a row in (lo, hi]: the newer row makes them unreachable for
            # reads at revisions >= target. This must run before the tombstones go, since it
            # finds a tombstone's predecessor through the tombstone.
            conn.execute("DELETE FROM log WHERE rev IN (SELECT prev_rev FROM log"
                         " WHERE rev > ? AND rev <= ? AND prev_rev > 0)", (lo, hi))
            conn.execute("DELETE FROM log WHERE rev > ? AND rev <= ? AND deleted = 1", (lo, hi))
            conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_rev'", (hi,))
        return hi >= target


def _close(conn: sqlite3.Connection | None, lock: int | None) -> None:
    """Close a connection and its ``-writelock`` descriptor (either may be absent)."""
    if conn is not None:
        conn.close()
    if lock is not None:
        os.close(lock)


@contextlib.contextmanager
def _turn(fd: int | None, busy_timeout: float) -> Iterator[None]:
    """Wait for a turn, by the ``-writelock`` descriptor ``fd``, among the writers of the
    file (every process's writer, and every checkpointer finishing a checkpoint).

    SQLite's own wait for its write lock (the busy handler behind ``busy_timeout``) sleeps
    1, 2, 5, 10, 15, ... ms between tries, so a write that finds another process's
    transaction in progress (one fsync: a millisecond or two) waits 3, 8, 18 ms or more.
    Writers of this store therefore first take an exclusive ``flock`` on the file's
    ``-writelock`` companion, trying again every 0.1-1 ms: the write lock is then free
    (or nearly: a process that is not svcnet's may hold it, and SQLite's wait still
    applies) when BEGIN IMMEDIATE asks for it. The wait is bounded by ``busy_timeout``
    like SQLite's: past it the write fails with Unavailable, "database is locked".
    """
    if fd is None:
        yield
        return
    deadline = time.monotonic() + busy_timeout
    pause = 0.0001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise Unavailable(f"sqlite: database is locked (another process has been "
                                  f"writing for over {busy_timeout:g} s)") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.001)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
