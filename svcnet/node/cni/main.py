"""The ``svcnet-cni`` executable: the CNI environment and standard input in, JSON out.

Theory of operation
-------------------
A thin wrapper, as libcni's ``skel.PluginMain`` is for Go plugins: read the operation from the
environment (:func:`~svcnet.node.cni.spec.invocation_from_env`) and the configuration from
standard input (:func:`~svcnet.node.cni.config.parse_netconf`, which dispatches on its
``type``: ``svcnet-cni`` or ``loopback``, so one script serves under both names), run the
command (:func:`~svcnet.node.cni.plugin.run`), print the result, exit 0; or print the error
object and exit 1. An unexpected exception is still answered in the protocol (code 110, with
its type and message) rather than as a traceback the runtime cannot parse.

This runs on every pod start and stop, so imports are staged: VERSION needs only
:mod:`.spec`; ADD/DEL/CHECK add the planners, the IPAM and ``subprocess``, never asyncio, aiohttp
or the API client (docs/CNI.md has the measured start-up times).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from svcnet.node.cni.spec import (
    CURRENT_VERSION,
    SUPPORTED_VERSIONS,
    CNIError,
    invocation_from_env,
    version_info,
)

__all__ = ["INTERNAL_ERROR", "main"]

INTERNAL_ERROR = 110
"""An exception the plugin did not expect (a bug): still reported as a CNI error."""


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _requested_version(stdin: bytes) -> str:
    """The configuration's version for an error about the configuration itself, if it has a
    version this plugin speaks."""
    try:
        version = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        return CURRENT_VERSION
    return version if version in SUPPORTED_VERSIONS else CURRENT_VERSION


def main() -> int:
    version: str | None = None
    stdin = b""
    try:
        stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
        invocation = invocation_from_env(os.environ)
        if invocation.args is None:
            _emit(version_info())
            return 0
        from svcnet.node.cni.config import parse_netconf
        from svcnet.node.cni.plugin import run

        conf = parse_netconf(stdin)
        version = conf.cni_version if conf.cni_version in SUPPORTED_VERSIONS else CURRENT_VERSION
        result = run(invocation.command, conf, invocation.args)
        if result is not None:
            _emit(result.to_json(version))
        return 0
    except CNIError as exc:
        _emit(exc.to_json(_requested_version(stdin) if version is None else version))
        return 1
    except Exception as exc:
        _emit(CNIError(INTERNAL_ERROR, "internal error",
                       f"{type(exc).__name__}: {exc}").to_json(version or CURRENT_VERSION))
        return 1
