"""Applying scripts through libnftables in-process, and the runner the node agent uses.

Why: an ``nft -f`` process costs ~20 ms per apply whatever the script's size — process start,
``ip netns exec``, loading the library — which is nearly all of a one-Service change.
libnftables (``libnftables.so.1``, the library inside ``nft``; Debian's ``libnftables1``,
installed with ``nftables``) parses and commits the same text in well under a millisecond for
such a change. The same script text goes to both, so the kernel sees the same transaction.

The binding is a handful of ``ctypes`` calls (the C API is seven functions), not the
``nftables`` Python module: Debian's copy lives outside a virtualenv's path, and the copy on
the package index is an older fork of it.

Network namespaces: a libnftables context talks netlink through a socket that belongs to the
namespace of the thread that opened it. So for a namespace the context is created — and every
command run — on a private :class:`~svcnet.util.nsthread.NetnsThread` that entered that
namespace and never leaves it; callers in any other thread wait for it. One context is not
thread-safe, and the queue of that one thread also serialises the calls.

:class:`NodeNft` is what the node agent uses: small scripts (incremental syncs) go through
libnftables, big ones (full syncs, up to hundreds of MB) through an ``nft`` process, so the
parser's peak memory (164 MiB at 10k Services) is returned to the system when the process
exits instead of staying in the agent's heap. If the library cannot be loaded, everything goes
through the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable
from typing import Final, TypeVar

from svcnet.proxy.nft.nft import NftError, SubprocessNft
from svcnet.util.nsthread import NetnsThread

__all__ = ["LIBRARY", "LibNft", "NodeNft", "load_library"]

T = TypeVar("T")

LIBRARY: Final = "libnftables.so.1"
#: Scripts up to this size go in-process in :class:`NodeNft` (an incremental sync of a few
#: Services is a few KiB; a full sync of 1k Services is ~1 MB).
SMALL_SCRIPT_BYTES: Final = 256 * 1024


def load_library(name: str = LIBRARY) -> ctypes.CDLL:
    """Load libnftables and declare the functions we call; raises ``OSError`` if absent."""
    lib = ctypes.CDLL(name, use_errno=True)
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_free.restype = None
    for fn in (lib.nft_ctx_buffer_output, lib.nft_ctx_buffer_error):
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = ctypes.c_int
    for fn in (lib.nft_ctx_get_output_buffer, lib.nft_ctx_get_error_buffer):
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = ctypes.c_char_p
    lib.nft_ctx_set_dry_run.argtypes = [ctypes.c_void_p, ctypes.c_bool]
    lib.nft_ctx_set_dry_run.restype = None
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib


class LibNft:
    """An :class:`~svcnet.proxy.nft.nft.NftRunner` over libnftables, optionally in ``netns``."""

    def __init__(self, netns: str | None = None, *, library: str = LIBRARY) -> None:
        try:
            self._lib = load_library(library)
        except OSError as err:
            raise NftError(f"cannot load {library}: {err}") from err
        self.netns = netns
        self._thread = NetnsThread(netns) if netns is not None else None
        self._lock = threading.Lock()
        self._ctx: int | None = None
        self._closed = False

    def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise NftError("libnftables context is closed")
        if self._thread is not None:
            try:
                return self._thread.call_sync(fn)
            except OSError as err:  # the namespace could not be entered
                raise NftError(f"cannot enter network namespace {self.netns}: {err}") from err
        with self._lock:
            return fn()

    def _context(self) -> int:
        """The context, created on first use (on the calling — i.e. the netns — thread)."""
        if self._ctx is None:
            ctx = self._lib.nft_ctx_new(0)
            if not ctx:
                raise NftError("nft_ctx_new failed")
            self._lib.nft_ctx_buffer_output(ctx)
            self._lib.nft_ctx_buffer_error(ctx)
            self._ctx = int(ctx)
        return self._ctx

    def _run(self, text: str, *, dry_run: bool = False) -> str:
        def run() -> tuple[int, str, str]:
            ctx = self._context()
            self._lib.nft_ctx_set_dry_run(ctx, dry_run)
            try:
                rc = self._lib.nft_run_cmd_from_buffer(ctx, text.encode())
            finally:
                self._lib.nft_ctx_set_dry_run(ctx, False)
            # Reading a buffer also rewinds it for the next command.
            out = self._lib.nft_ctx_get_output_buffer(ctx) or b""
            err = self._lib.nft_ctx_get_error_buffer(ctx) or b""
            return rc, out.decode(errors="replace"), err.decode(errors="replace")

        rc, out, err = self._call(run)
        if rc != 0:
            where = f" in network namespace {self.netns}" if self.netns else ""
            raise NftError(f"libnftables rejected the script{where}", stderr=err,
                           returncode=rc)
        return out

    def apply(self, text: str) -> None:
        self._run(text)

    def check(self, text: str) -> None:
        """Parse and validate ``text`` in the kernel without committing (``nft -c``)."""
        self._run(text, dry_run=True)

    def list_table(self, family: str, name: str) -> str:
        """``nft list table`` — for tests and debugging."""
        return self._run(f"list table {family} {name}")

    def close(self) -> None:
        """Free the context and stop the namespace thread. Idempotent."""
        if self._closed:
            return

        def free() -> None:
            if self._ctx is not None:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = None

        with contextlib.suppress(NftError):  # the namespace is gone, and the socket's use
            self._call(free)
        self._closed = True
        if self._thread is not None:
            self._thread.close()


class NodeNft:
    """Small scripts in-process (libnftables), big ones through an ``nft`` process."""

    def __init__(self, netns: str | None = None, *,
                 small_script_bytes: int = SMALL_SCRIPT_BYTES,
                 library: str = LIBRARY) -> None:
        self.netns = netns
        self.small_script_bytes = small_script_bytes
        self.process = SubprocessNft(netns)
        self.library: LibNft | None
        try:
            self.library = LibNft(netns, library=library)
        except NftError:
            self.library = None

    def apply(self, text: str) -> None:
        if self.library is not None and len(text) <= self.small_script_bytes:
            self.library.apply(text)
        else:
            self.process.apply(text)

    def check(self, text: str) -> None:
        self.process.check(text)

    def list_table(self, family: str, name: str) -> str:
        return self.process.list_table(family, name)

    def list_table_json(self, family: str, name: str) -> str | None:
        return self.process.list_table_json(family, name)

    def close(self) -> None:
        if self.library is not None:
            self.library.close()
