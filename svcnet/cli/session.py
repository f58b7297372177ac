"""The CLI's session with the API: the kubeconfig, a REST client that also reports the status
and Warning headers, and running one command's work with kubectl's failure messages."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click

from svcnet.api.access import as_dict as _dict, as_text as _str, meta_of as _meta
from svcnet.api.errors import StatusError, go_quote
from svcnet.apiserver.resources import Resource
from svcnet.cli.kinds import CommandError, kind_ref, resolve_kind, resource_for_object
from svcnet.cli.manifests import load_manifests
from svcnet.cli.printing import format_status_error, format_transport_error
from svcnet.client.kubeconfig import KubeConfig, KubeconfigError, load_kubeconfig
from svcnet.client.rest import GVR, RESTClient, TransportError

Obj = dict[str, Any]

TABLE_ACCEPT: Final = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                       "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
DEFAULT_KUBECONFIG: Final = Path(".svcnet") / "svcnet" / "kubeconfig"
"""Relative to the home directory: the kubeconfig of ``svcnet up``'s default cluster."""


def kubeconfig_path(explicit: Path | None, environ: Mapping[str, str] | None = None,
                    home: Path | None = None) -> Path:
    """``--kubeconfig``, else the first entry of ``$KUBECONFIG``, else the default cluster's."""
    if explicit is not None:
        return explicit
    env = (os.environ if environ is None else environ).get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    if first:
        return Path(first)
    if home is None:
        from svcnet.cluster.state import cluster_dir

        return cluster_dir("svcnet") / "kubeconfig"  # honours SVCNET_HOME, like svcnet up
    return home / DEFAULT_KUBECONFIG


class _Client(RESTClient):
    """RESTClient plus the two things these commands need from one request: the HTTP status
    (201 tells ``apply`` it created) and a custom Accept header (Tables for ``get``)."""

    async def send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: Any = None, content_type: str = "application/json",
                   accept: str = "application/json") -> tuple[int, Obj]:
        answer = await self.exchange(method, path, params=params, body=body,
                                     content_type=content_type, accept=accept)
        for warning in answer.warnings:
            click.echo(f"Warning: {format_warning(warning)}", err=True)
        if not isinstance(answer.body, dict):
            raise TransportError(f"{method} {path}: answer is not a JSON object")
        return answer.status, answer.body

    async def table(self, gvr: GVR, namespace: str, name: str = "", *,
                    label_selector: str = "") -> Obj:
        params = {"labelSelector": label_selector} if label_selector and not name else {}
        _, doc = await self.send("GET", gvr.path(namespace, name), params=params,
                                 accept=TABLE_ACCEPT)
        if doc.get("kind") != "Table":
            # Every Kubernetes API server since 1.15 serves Tables; anything else is not one.
            raise TransportError(f"GET {gvr.path(namespace, name)}: the server did not answer "
                                 "with a Table")
        return doc


_WARNING: Final = re.compile(r'^\d{3} \S+ ("(?:[^"\\]|\\.)*")')


def format_warning(header: str) -> str:
    """The text of an RFC 7234 ``Warning: 299 - "text"`` header, as kubectl prints it."""
    match = _WARNING.match(header)
    if match is None:
        return header
    try:
        return str(json.loads(match.group(1)))
    except ValueError:
        return header


@dataclass
class _Api:
    client: _Client
    config: KubeConfig
    explicit_namespace: str | None

    @property
    def namespace(self) -> str:
        """``-n``, else the kubeconfig context's namespace (itself ``default`` if unset)."""
        return self.explicit_namespace or self.config.namespace

    def namespace_for(self, r: Resource) -> str:
        return self.namespace if r.namespaced else ""


_Work = Callable[[_Api], Awaitable[bool]]


def _run(ctx: click.Context, kubeconfig: Path | None, namespace: str | None,
         work: _Work) -> None:
    """Run ``work`` against the API and exit: 0 if it returns True, else 1.

    Failures are printed here, once, in kubectl's words, and exit through SystemExit.
    """
    server = ""
    try:
        config = load_kubeconfig(kubeconfig_path(kubeconfig))
        server = config.server
        ok = asyncio.run(_session(config, namespace, work))
    except (CommandError, StatusError, TransportError, KubeconfigError) as e:
        if _dict(ctx.find_root().obj).get("debug"):
            traceback.print_exception(e)
        _fail(_message_for(e, server, default_kubeconfig=kubeconfig is None))
    if not ok:
        sys.exit(1)


def _message_for(e: Exception, server: str, *, default_kubeconfig: bool) -> str:
    if isinstance(e, StatusError):
        return format_status_error(e)
    if isinstance(e, TransportError):
        return format_transport_error(e, server)
    if isinstance(e, KubeconfigError):
        hint = (" (start a cluster with `svcnet up`, or pass --kubeconfig)"
                if default_kubeconfig and "cannot read" in str(e) else "")
        return f"error: {e}{hint}"
    return str(e)


def _fail(message: str) -> NoReturn:
    click.echo(message.rstrip("\n"), err=True)
    sys.exit(1)


async def _session(config: KubeConfig, namespace: str | None, work: _Work) -> bool:
    client = _Client(config.server, token=config.token,
                     ssl_context=config.ssl_context() if config.is_tls else None,
                     server_hostname=config.tls_server_name, user_agent="svcnet-cli/0.1.0")
    async with client:
        return await work(_Api(client, config, namespace or None))


_F = TypeVar("_F", bound=Callable[..., Any])


def _client_options(f: _F) -> _F:
    f = click.option("-n", "--namespace", default=None, metavar="NS",
                     help="Namespace (default: the kubeconfig context's, else 'default').")(f)
    return click.option(
        "--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None,
        help="Kubeconfig file (default: $KUBECONFIG, else ~/.svcnet/svcnet/kubeconfig).")(f)


def _kind_and_names(kind: str, names: Sequence[str]) -> tuple[Resource, list[str]]:
    """``KIND NAME...`` or kubectl's ``KIND/NAME`` form; an unknown KIND ends the command."""
    if "/" in kind and not names:
        kind, _, name = kind.partition("/")
        names = [name]
    try:
        return resolve_kind(kind), list(names)
    except CommandError as e:
        _fail(str(e))


def _source_name(path: Path) -> str:
    return "STDIN" if str(path) == "-" else str(path)


def _manifests(files: Sequence[Path]) -> list[tuple[Path, Obj]]:
    """Every object of every file; the first unreadable file fails the command."""
    out: list[tuple[Path, Obj]] = []
    for path in files:
        try:
            out.extend((path, obj) for obj in load_manifests(path))
        except click.ClickException as e:
            _fail(f"error: {e.format_message()}")
    return out


def _object_target(api: _Api, path: Path, obj: Obj) -> tuple[Resource, str, str]:
    """(resource, namespace, name) of a manifest object, checked as kubectl checks them."""
    meta = _meta(obj)
    name = _str(meta.get("name"))
    r = resource_for_object(obj)
    if r is None:
        raise CommandError(
            f"error: resource mapping not found for name: {go_quote(name)} namespace: "
            f"{go_quote(_str(meta.get('namespace')))} from {go_quote(_source_name(path))}: "
            f"no matches for kind {go_quote(_str(obj.get('kind')))} in version "
            f"{go_quote(_str(obj.get('apiVersion')))}")
    if not name:
        raise CommandError(f"error: {_source_name(path)}: {kind_ref(r)} has no metadata.name "
                           "(resource name may not be empty)")
    namespace = ""
    if r.namespaced:
        namespace = _str(meta.get("namespace")) or api.namespace
        if api.explicit_namespace and namespace != api.explicit_namespace:
            raise CommandError(
                f"error: the namespace from the provided object {go_quote(namespace)} does not "
                f"match the namespace {go_quote(api.explicit_namespace)}. You must pass "
                f"'--namespace={namespace}' to perform this operation.")
    return r, namespace, name


# -- apply ----------------------------------------------------------------------------------
