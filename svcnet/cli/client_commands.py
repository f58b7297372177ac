"""Client commands: ``svcnet apply``, ``get``, ``delete`` and ``describe``, the kubectl way.

For machines without kubectl. Each command loads a kubeconfig (``--kubeconfig``, else the first
entry of ``$KUBECONFIG``, else the default cluster's ``~/.svcnet/svcnet/kubeconfig``), opens one
:class:`~svcnet.client.rest.RESTClient` inside one ``asyncio.run`` and talks plain Kubernetes
REST, so the commands work against any conformant API server, not only ``svcnet server``.

What is printed follows kubectl 1.3x, to the byte where scripts and people compare it:

* ``get`` asks the server for a ``meta.k8s.io`` Table (as kubectl does: the server owns the
  columns) and lays it out with Go's ``text/tabwriter`` rules and kubectl's settings (minimum
  width 6, padding 3): upper-cased headers, ``priority: 1`` columns only with ``-o wide``, a
  NAMESPACE column with ``-A``. ``-o json`` / ``-o yaml`` print the object, or a ``List`` for a
  collection, without ``managedFields``; ``-o name`` prints ``service/web`` lines.
* ``apply`` is server-side apply (field manager ``svcnet-apply``), which needs no client-side
  merge logic and no last-applied annotation; it reports ``created`` (201), ``unchanged``
  (resourceVersion did not move) or ``configured``.
* ``describe`` ports kubectl's Service, Namespace and generic describers (tabwriter padding 2).
* Errors are worded as kubectl words them: ``The Service "x" is invalid: ...`` from a 422's
  causes, ``Error from server (Reason): message`` for other failure Statuses.

Exit status: 0 on success, 1 on any failure (message on stderr, traceback only with
``svcnet --debug``), 2 for usage errors (click's).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from svcnet.api.access import as_dict as _dict, as_text as _str, meta_of as _meta
from svcnet.api.errors import StatusError, go_quote
from svcnet.apiserver.resources import Resource
from svcnet.cli.describe import (
    describe_endpoint_slice,
    describe_generic,
    describe_namespace,
    describe_service,
)
from svcnet.cli.describe_configs import (
    describe_config_map,
    describe_secret,
    describe_service_account,
)
from svcnet.cli.kinds import CommandError, gvr_of, kind_ref
from svcnet.cli.printing import (
    _apply_conflict_message,
    _as_list,
    _without_managed_fields,
    dump_json,
    dump_yaml,
    format_status_error,
    render_table,
)
from svcnet.cli.session import (
    _Api,
    _client_options,
    _fail,
    _kind_and_names,
    _manifests,
    _object_target,
    _run,
    _source_name,
)
from svcnet.client.rest import GVR, LIMITRANGES, RESOURCEQUOTAS, SECRETS

__all__ = [
    "apply",
    "delete",
    "describe",
    "exec_",
    "explain",
    "get",
    "logs",
]

Obj = dict[str, Any]

FIELD_MANAGER: Final = "svcnet-apply"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
OUTPUT_FORMATS: Final = ("wide", "yaml", "json", "name")


@click.command()
@click.option("-f", "--filename", "files", multiple=True, required=True,
              type=click.Path(path_type=Path, allow_dash=True),
              help="Manifest file (YAML or JSON, multi-document); '-' reads stdin.")
@click.option("--force-conflicts", is_flag=True,
              help="Take over fields another manager owns instead of failing.")
@_client_options
@click.pass_context
def apply(ctx: click.Context, files: tuple[Path, ...], force_conflicts: bool,
          kubeconfig: Path | None, namespace: str | None) -> None:
    """Create or update objects from manifests (server-side apply).

    Prints `KIND/NAME created`, `configured` or `unchanged` for each object, as kubectl does.
    Fields this command applied earlier and that a manifest no longer sets are removed;
    fields set by other writers with different values are conflicts unless --force-conflicts.
    """
    manifests = _manifests(files)

    async def work(api: _Api) -> bool:
        ok = True
        for path, obj in manifests:
            try:
                click.echo(await _apply_one(api, path, obj, force_conflicts))
            except CommandError as e:
                click.echo(str(e), err=True)
                ok = False
            except StatusError as e:
                # Field ownership conflicts are 409s too, but need a different remedy than a
                # resourceVersion race: say which.
                ownership = e.code == 409 and e.message.startswith("Apply failed")
                click.echo(_apply_conflict_message(e) if ownership else format_status_error(e),
                           err=True)
                ok = False
        return ok

    _run(ctx, kubeconfig, namespace, work)


async def _apply_one(api: _Api, path: Path, obj: Obj, force: bool) -> str:
    r, namespace, name = _object_target(api, path, obj)
    gvr = gvr_of(r)
    body = {**obj, "metadata": {**_meta(obj)}}
    if r.namespaced:
        body["metadata"]["namespace"] = namespace
    before = ""
    try:
        before = _str(_meta(await api.client.get(gvr, namespace, name)).get("resourceVersion"))
    except StatusError as e:
        if e.code != 404:
            raise
    # Strict, as kubectl's default --validate=strict: a misspelt field is an error, not a
    # silently dropped setting.
    params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict",
              **({"force": "true"} if force else {})}
    status, applied = await api.client.send("PATCH", gvr.path(namespace, name), params=params,
                                            body=body, content_type="application/apply-patch+yaml")
    after = _str(_meta(applied).get("resourceVersion"))
    verb = ("created" if status == 201
            else "unchanged" if before and after == before else "configured")
    return f"{kind_ref(r)}/{name} {verb}"


# -- get ------------------------------------------------------------------------------------


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="wide: more columns; yaml/json: the objects; name: KIND/NAME lines.")
@click.option("-l", "--selector", default="", metavar="SELECTOR",
              help="Label selector, e.g. app=web,tier!=db.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@_client_options
@click.pass_context
def get(ctx: click.Context, kind: str, names: tuple[str, ...], output: str | None,
        selector: str, all_namespaces: bool, kubeconfig: Path | None,
        namespace: str | None) -> None:
    """Show objects of KIND as a table, or as YAML, JSON or names.

    KIND is a kind, resource or short name (svc, services, endpointslices, no, ns, po...);
    NAMEs pick objects, else all of them (-l filters). KIND/NAME works too.
    """
    r, wanted = _kind_and_names(kind, names)
    if wanted and all_namespaces:
        _fail("error: a resource cannot be retrieved by name across all namespaces")

    async def work(api: _Api) -> bool:
        ns = "" if all_namespaces else api.namespace_for(r)
        return await _get(api, r, ns, wanted, output, selector,
                          with_namespace=all_namespaces and r.namespaced)

    _run(ctx, kubeconfig, namespace, work)


async def _get(api: _Api, r: Resource, ns: str, names: Sequence[str], output: str | None,
               selector: str, *, with_namespace: bool) -> bool:
    gvr, errors = gvr_of(r), []
    if output in (None, "wide"):
        tables = []
        if names:
            for name in names:
                try:
                    tables.append(await api.client.table(gvr, ns, name))
                except StatusError as e:
                    errors.append(format_status_error(e))
        else:
            tables.append(await api.client.table(gvr, ns, label_selector=selector))
        text = render_table(tables, wide=output == "wide", with_namespace=with_namespace)
        click.echo(text, nl=False)
        if not text and not errors:
            click.echo(f"No resources found in {ns} namespace." if ns and r.namespaced
                       else "No resources found", err=True)
    else:
        objects = []
        if names:
            for name in names:
                try:
                    objects.append(await api.client.get(gvr, ns, name))
                except StatusError as e:
                    errors.append(format_status_error(e))
        else:
            objects = (await api.client.list_all(gvr, ns, label_selector=selector)).items
        objects = [_without_managed_fields(o) for o in objects]
        if output == "name":
            for obj in objects:
                click.echo(f"{kind_ref(r)}/{_str(_meta(obj).get('name'))}")
        elif objects or not names:
            doc = objects[0] if len(names) == 1 else _as_list(objects)
            click.echo(dump_json(doc) if output == "json" else dump_yaml(doc), nl=False)
    for message in errors:
        click.echo(message, err=True)
    return not errors


# -- delete ---------------------------------------------------------------------------------


@click.command()
@click.argument("args", nargs=-1, metavar="[KIND NAME...]")
@click.option("-f", "--filename", "files", multiple=True,
              type=click.Path(path_type=Path, allow_dash=True),
              help="Delete the objects a manifest names; '-' reads stdin.")
@click.option("-l", "--selector", default="", metavar="SELECTOR",
              help="Delete every object of KIND matching this label selector.")
@click.option("--ignore-not-found", is_flag=True, help="An absent object is not an error.")
@_client_options
@click.pass_context
def delete(ctx: click.Context, args: tuple[str, ...], files: tuple[Path, ...], selector: str,
           ignore_not_found: bool, kubeconfig: Path | None, namespace: str | None) -> None:
    """Delete objects by name, by label selector or as listed in manifests.

    Prints `KIND "NAME" deleted` for each; an absent object is an error (exit 1) unless
    --ignore-not-found. KIND/NAME works too.
    """
    if files and args:
        _fail("error: there is no need to specify a resource type as a separate argument "
              "when passing arguments in resource/name form or with -f")
    if not files and not args:
        _fail("error: You must provide one or more resources by argument or filename.")
    targets: list[tuple[str, Path | None, Obj | None]] = []
    resource: Resource | None = None
    if files:
        targets = [("", path, obj) for path, obj in _manifests(files)]
    else:
        resource, names = _kind_and_names(args[0], args[1:])
        if not names and not selector:
            _fail("error: resource(s) were provided, but no name was specified")
        targets = [(name, None, None) for name in names]

    async def work(api: _Api) -> bool:
        jobs: list[tuple[Resource, str, str, str]] = []  # resource, namespace, name, context
        for target, path, obj in targets:
            if path is not None and obj is not None:
                r, ns, name = _object_target(api, path, obj)
                jobs.append((r, ns, name, f"error when deleting {go_quote(_source_name(path))}: "))
            elif resource is not None:
                jobs.append((resource, api.namespace_for(resource), target, ""))
        if resource is not None and selector and not targets:
            ns = api.namespace_for(resource)
            found = await api.client.list_all(gvr_of(resource), ns, label_selector=selector)
            jobs = [(resource, ns, _str(_meta(o).get("name")), "") for o in found.items]
            if not jobs:
                click.echo("No resources found", err=True)
        ok = True
        for r, ns, name, context in jobs:
            try:
                await api.client.delete(gvr_of(r), ns, name)
            except StatusError as e:
                if e.code == 404 and ignore_not_found:
                    continue
                message = format_status_error(e)
                if context and message.startswith("Error from server"):
                    head, _, rest = message.partition(": ")
                    message = f"{head}: {context}{rest}"
                click.echo(message, err=True)
                ok = False
                continue
            click.echo(f"{kind_ref(r)} {go_quote(name)} deleted")
        return ok

    _run(ctx, kubeconfig, namespace, work)


# -- describe -------------------------------------------------------------------------------


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-l", "--selector", default="", metavar="SELECTOR",
              help="Describe every object of KIND matching this label selector.")
@_client_options
@click.pass_context
def describe(ctx: click.Context, kind: str, names: tuple[str, ...], selector: str,
             kubeconfig: Path | None, namespace: str | None) -> None:
    """Show objects of KIND in detail, as kubectl describe does.

    Services show their ports with the ready endpoints behind each (from the EndpointSlices
    labelled kubernetes.io/service-name) and their events.
    """
    r, wanted = _kind_and_names(kind, names)

    async def work(api: _Api) -> bool:
        gvr, ns = gvr_of(r), api.namespace_for(r)
        if wanted:
            objects = [await api.client.get(gvr, ns, name) for name in wanted]
        else:
            objects = (await api.client.list_all(gvr, ns, label_selector=selector)).items
            if not objects:
                click.echo(f"No resources found in {ns} namespace." if ns
                           else "No resources found", err=True)
        texts = [await _describe_one(api, r, obj) for obj in objects]
        if texts:
            click.echo("\n\n".join(texts), nl=False)
        return True

    _run(ctx, kubeconfig, namespace, work)


async def _describe_one(api: _Api, r: Resource, obj: Obj) -> str:
    now = datetime.now(UTC)
    meta = _meta(obj)
    name, ns = _str(meta.get("name")), _str(meta.get("namespace"))
    if (r.group, r.kind) == ("", "Namespace"):
        quotas = (await api.client.list_all(RESOURCEQUOTAS, name)).items
        limit_ranges = (await api.client.list_all(LIMITRANGES, name)).items
        return describe_namespace(obj, quotas, limit_ranges)
    if (r.group, r.kind) == ("", "Secret"):
        return describe_secret(obj)
    events = await _events_about(api, r, obj)
    if (r.group, r.kind) == ("", "Service"):
        slices = await _service_slices(api, ns, name)
        return describe_service(obj, slices, events, now)
    if (r.group, r.kind) == ("discovery.k8s.io", "EndpointSlice"):
        return describe_endpoint_slice(obj, events, now)
    if (r.group, r.kind) == ("", "ConfigMap"):
        return describe_config_map(obj, events, now)
    if (r.group, r.kind) == ("", "ServiceAccount"):
        return describe_service_account(obj, await _secrets_in(api, ns), events, now)
    return describe_generic(obj, events, now)


async def _secrets_in(api: _Api, namespace: str) -> list[Obj] | None:
    # As kubectl, Secrets that cannot be listed leave the ServiceAccount described without.
    try:
        return (await api.client.list_all(SECRETS, namespace)).items
    except StatusError:
        return None


async def _service_slices(api: _Api, namespace: str, name: str) -> list[Obj]:
    # Like kubectl, a failed lookup shows as no endpoints rather than failing the describe.
    gvr = GVR("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
    try:
        found = await api.client.list_all(gvr, namespace,
                                          label_selector=f"{SERVICE_NAME_LABEL}={name}")
    except StatusError:
        return []
    return found.items


async def _events_about(api: _Api, r: Resource, obj: Obj) -> list[Obj]:
    """Core v1 events whose involvedObject is ``obj`` (kubectl's searchEvents)."""
    meta = _meta(obj)
    fields = {"involvedObject.name": _str(meta.get("name")),
              "involvedObject.namespace": _str(meta.get("namespace")),
              "involvedObject.kind": r.kind}
    if meta.get("uid"):
        fields["involvedObject.uid"] = _str(meta["uid"])
    selector = ",".join(f"{k}={v}" for k, v in fields.items())
    gvr = GVR("", "v1", "events", "Event")
    try:
        found = await api.client.list_all(gvr, _str(meta.get("namespace")),
                                          field_selector=selector)
    except StatusError:
        return []
    return found.items


# -- exec and logs ----------------------------------------------------------------------------


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_client_options
@click.pass_context
def exec_(ctx: click.Context, pod: str, command: tuple[str, ...], kubeconfig: Path | None,
          namespace: str | None) -> None:
    """Run COMMAND inside POD's network namespace: svcnet exec POD -- CMD [ARGS...].

    The command runs on the host's filesystem (as the pod's containers do), in the pod's
    network namespace, so it sees the pod's IP, routes and cluster DNS.
    """

    from svcnet.api.nodes import LABEL_CLUSTER, LABEL_NODE_INDEX
    from svcnet.node.names import ClusterNames

    found: dict[str, str] = {}

    async def locate(api: _Api) -> bool:
        obj = await api.client.get(GVR("", "v1", "pods", "Pod"), api.namespace, pod)
        node_name = _str(_dict(obj.get("spec")).get("nodeName"))
        if not node_name:
            raise CommandError(f"error: pod {pod} is not scheduled to a node yet")
        node = await api.client.get(GVR("", "v1", "nodes", "Node", False), "", node_name)
        labels = _dict(_meta(node).get("labels"))
        if LABEL_CLUSTER not in labels or LABEL_NODE_INDEX not in labels:
            raise CommandError(f"error: node {node_name} is not a svcnet node")
        names = ClusterNames.for_cluster(_str(labels[LABEL_CLUSTER]))
        found["netns"] = names.pod_network(int(_str(labels[LABEL_NODE_INDEX])),
                                           _str(_meta(obj).get("uid"))).pod_netns
        return True

    _run(ctx, kubeconfig, namespace, locate)
    argv = list(command[1:] if command and command[0] == "--" else command)
    if not argv:
        _fail("error: you must specify a command to run")
    if os.geteuid() != 0:
        _fail("error: svcnet exec needs root (it enters a network namespace)")
    # ip netns exec also bind-mounts /etc/netns/<pod>/resolv.conf: the pod's cluster DNS.
    os.execvp("ip", ["ip", "netns", "exec", found["netns"], *argv])


@click.command()
@click.argument("pod")
@click.option("-c", "--container", default="", help="Container (default: the only one).")
@click.option("-f", "--follow", is_flag=True, help="Stream new output.")
@click.option("-p", "--previous", is_flag=True, help="The previous run's log.")
@click.option("--tail", "tail", default=-1, help="Only the last N lines.")
@_client_options
@click.pass_context
def logs(ctx: click.Context, pod: str, container: str, follow: bool, previous: bool,
         tail: int, kubeconfig: Path | None, namespace: str | None) -> None:
    """Print a pod's container log (as kubectl logs does, through the API)."""
    params = {k: v for k, v in (("container", container), ("follow", "true" if follow else ""),
                                ("previous", "true" if previous else ""),
                                ("tailLines", str(tail) if tail >= 0 else "")) if v}

    async def stream(api: _Api) -> bool:
        path = f"{GVR('', 'v1', 'pods', 'Pod').path(api.namespace, pod, 'log')}"
        session = api.client._get_session()
        async with session.get(api.client.server + path, params=params,
                               headers=api.client._headers) as resp:
            if resp.status >= 300:
                from svcnet.client.rest import status_error_from

                raise status_error_from(resp.status, await resp.read())
            async for chunk in resp.content.iter_any():
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        return True

    _run(ctx, kubeconfig, namespace, stream)


@click.command()
@click.argument("service")
@click.option("--node", "node_name", default="", help="Node to explain for (default: the first).")
@_client_options
@click.pass_context
def explain(ctx: click.Context, service: str, node_name: str, kubeconfig: Path | None,
            namespace: str | None) -> None:
    """Show how SERVICE's traffic is handled on a node: frontends, verdicts, backends."""
    from svcnet.api.nodes import LABEL_CLUSTER, LABEL_NODE_INDEX
    from svcnet.node.names import ClusterNames
    from svcnet.proxy.explain import explain as explain_service
    from svcnet.proxy.ruleset import ProxyConfig
    from svcnet.proxy.service import node_info

    async def work(api: _Api) -> bool:
        svc_gvr = GVR("", "v1", "services", "Service")
        svc = await api.client.get(svc_gvr, api.namespace, service)
        services = (await api.client.list_all(svc_gvr)).items
        slices = (await api.client.list_all(
            GVR("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"))).items
        nodes_gvr = GVR("", "v1", "nodes", "Node", False)
        nodes = sorted((await api.client.list_all(nodes_gvr)).items,
                       key=lambda n: _str(_meta(n).get("name")))
        node = next((n for n in nodes if _meta(n).get("name") == node_name),
                    None) if node_name else (nodes[0] if nodes else None)
        if node is None:
            raise CommandError(f"error: node {node_name or '(any)'} not found")
        families = [f for f in _dict(svc.get("spec")).get("ipFamilies") or ["IPv4"]
                    if f in ("IPv4", "IPv6")]
        labels = _dict(_meta(node).get("labels"))
        for family in families:
            # (The IPv6 cluster CIDR is the agent's flag, not in the API: none is assumed.)
            config = ProxyConfig() if family == "IPv4" else ProxyConfig(
                family="IPv6", cluster_cidrs=())
            for line in explain_service(svc, services, slices, node_info(node), config):
                click.echo(line)
            if LABEL_CLUSTER in labels and LABEL_NODE_INDEX in labels:
                netns = ClusterNames.for_cluster(_str(labels[LABEL_CLUSTER])).node_netns(
                    int(_str(labels[LABEL_NODE_INDEX])))
                click.echo(f"  live: ip netns exec {netns} nft list table "
                           f"{config.syntax.ip} svcnet")
        return True

    _run(ctx, kubeconfig, namespace, work)
