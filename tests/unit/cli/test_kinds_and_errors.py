"""KIND arguments resolved as kubectl's REST mapper does, and errors worded as kubectl words
them (``cmdutil.CheckErr``): every case a table row."""

from __future__ import annotations

import errno
from pathlib import Path

import aiohttp
import pytest

from svcnet.api.errors import StatusError
from svcnet.cli.kinds import CommandError, kind_ref, resolve_kind, resource_for_object
from svcnet.cli.printing import format_status_error, format_transport_error
from svcnet.cli.session import format_warning, kubeconfig_path
from svcnet.client.rest import TransportError

# ================================================================================= kinds


@pytest.mark.parametrize(("arg", "group", "resource"), [
    ("svc", "", "services"),
    ("service", "", "services"),
    ("services", "", "services"),
    ("Service", "", "services"),
    ("SERVICES", "", "services"),
    ("services.v1", "", "services"),
    ("ep", "", "endpoints"),
    ("endpoints", "", "endpoints"),
    ("ev", "", "events"),  # core first, as kubectl resolves the ambiguous short name
    ("events", "", "events"),
    ("ns", "", "namespaces"),
    ("no", "", "nodes"),
    ("po", "", "pods"),
    ("endpointslices", "discovery.k8s.io", "endpointslices"),
    ("endpointslice", "discovery.k8s.io", "endpointslices"),
    ("EndpointSlice", "discovery.k8s.io", "endpointslices"),
    ("eps", "discovery.k8s.io", "endpointslices"),  # svcnet's extra short name
    ("endpointslices.discovery.k8s.io", "discovery.k8s.io", "endpointslices"),
    ("endpointslices.v1.discovery.k8s.io", "discovery.k8s.io", "endpointslices"),
    ("leases", "coordination.k8s.io", "leases"),
])
def test_resolve_kind(arg: str, group: str, resource: str) -> None:
    r = resolve_kind(arg)
    assert (r.group, r.resource) == (group, resource)


@pytest.mark.parametrize("arg", [
    "foo",
    "services.apps",  # right name, wrong group
    "endpointslices.v2.discovery.k8s.io",
    "events.events.k8s.io",  # catalogued, but not served yet
    "",
])
def test_resolve_unknown_kind(arg: str) -> None:
    with pytest.raises(CommandError) as e:
        resolve_kind(arg)
    assert str(e.value) == f'error: the server doesn\'t have a resource type "{arg}"'


@pytest.mark.parametrize(("api_version", "kind", "ref"), [
    ("v1", "Service", "service"),
    ("v1", "Namespace", "namespace"),
    ("discovery.k8s.io/v1", "EndpointSlice", "endpointslice.discovery.k8s.io"),
    ("coordination.k8s.io/v1", "Lease", "lease.coordination.k8s.io"),
    ("v1", "Foo", None),
    ("v2", "Service", None),
    ("apps/v1", "Deployment", "deployment.apps"),
    ("events.k8s.io/v1", "Event", None),  # not served yet
])
def test_resource_for_object_and_kind_ref(api_version: str, kind: str, ref: str | None) -> None:
    r = resource_for_object({"apiVersion": api_version, "kind": kind})
    assert (kind_ref(r) if r is not None else None) == ref


@pytest.mark.parametrize(("explicit", "env", "expected"), [
    ("/x/explicit", "/y/env", "/x/explicit"),
    (None, "/y/env", "/y/env"),
    (None, "/y/first:/y/second", "/y/first"),
    (None, ":/y/second", "/y/second"),
    (None, "", "/home/u/.svcnet/svcnet/kubeconfig"),
    (None, None, "/home/u/.svcnet/svcnet/kubeconfig"),
])
def test_kubeconfig_path(explicit: str | None, env: str | None, expected: str) -> None:
    environ = {} if env is None else {"KUBECONFIG": env}
    got = kubeconfig_path(None if explicit is None else Path(explicit), environ,
                          home=Path("/home/u"))
    assert got == Path(expected)


# ================================================================================ errors

PORT0 = "Invalid value: 0: must be between 1 and 65535, inclusive"


def invalid(details: dict[str, object], message: str = "ignored") -> StatusError:
    return StatusError(422, "Invalid", message, details)


def cause(field: str, message: str = PORT0) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "field": field, "message": message}


@pytest.mark.parametrize(("error", "text"), [
    pytest.param(
        invalid({"kind": "Service", "name": "bad", "causes": [cause("spec.ports[0].port")]}),
        f'The Service "bad" is invalid: spec.ports[0].port: {PORT0}', id="one-cause"),
    pytest.param(
        invalid({"kind": "Service", "name": "bad2", "causes": [
            cause("spec.ports[0].port"), cause("spec.ports[0].targetPort")]}),
        'The Service "bad2" is invalid: \n'
        f"* spec.ports[0].port: {PORT0}\n"
        f"* spec.ports[0].targetPort: {PORT0}", id="two-causes"),
    pytest.param(
        invalid({"kind": "Service", "name": "dup", "causes": [
            cause("spec.ports[0].port"), cause("spec.ports[0].port")]}),
        f'The Service "dup" is invalid: spec.ports[0].port: {PORT0}', id="duplicates-dropped"),
    pytest.param(
        invalid({"kind": "Service", "name": "x", "causes": [cause("", "bad thing")]}),
        'The Service "x" is invalid: : bad thing', id="cause-without-field"),
    pytest.param(invalid({"kind": "Service", "name": "x"}),
                 'The Service "x" is invalid', id="no-causes"),
    pytest.param(invalid({}, "it is bad"), "The request is invalid: it is bad",
                 id="no-details"),
    pytest.param(invalid({"causes": []}, "it is bad"), "The request is invalid: it is bad",
                 id="no-kind-no-causes"),
    pytest.param(invalid({"causes": [cause("a")]}, "it is bad"),
                 f"The request is invalid: a: {PORT0}", id="no-kind-with-cause"),
    pytest.param(invalid({"kind": "Service", "name": 'q"uote', "causes": [cause("a")]}),
                 f'The Service "q\\"uote" is invalid: a: {PORT0}', id="go-quoted-name"),
    pytest.param(StatusError(404, "NotFound", 'services "x" not found'),
                 'Error from server (NotFound): services "x" not found', id="not-found"),
    pytest.param(StatusError(409, "AlreadyExists", 'services "x" already exists'),
                 'Error from server (AlreadyExists): services "x" already exists',
                 id="already-exists"),
    pytest.param(StatusError(422, "Forbidden", "no"), "Error from server (Forbidden): no",
                 id="422-not-invalid"),
    pytest.param(StatusError(401, "Unauthorized", "Unauthorized"),
                 "error: You must be logged in to the server (Unauthorized)",
                 id="unauthorized"),
    pytest.param(StatusError(500, "", "boom"), "Error from server: boom", id="no-reason"),
])
def test_format_status_error(error: StatusError, text: str) -> None:
    assert format_status_error(error) == text


def transport(cause: BaseException | None) -> TransportError:
    e = TransportError("GET /api/v1/services: something")
    e.__cause__ = cause
    return e


def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 1, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, os_error)


@pytest.mark.parametrize(("cause", "detail"), [
    (connector_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")),
     "Connection refused"),
    (connector_error(OSError("no errno here")), "no errno here"),
    (TimeoutError(), "timed out"),
    (aiohttp.ServerDisconnectedError(), "Server disconnected"),
    (ValueError("multi\nline   detail"), "multi line detail"),
    (None, "GET /api/v1/services: something"),
])
def test_format_transport_error(cause: BaseException | None, detail: str) -> None:
    text = format_transport_error(transport(cause), "https://127.0.0.1:1")
    assert text == f"error: cannot reach the API server at https://127.0.0.1:1: {detail}"


@pytest.mark.parametrize(("header", "text"), [
    ('299 - "unknown field \\"spec.x\\""', 'unknown field "spec.x"'),
    ('299 - "plain" "Wed, 21 Oct 2015 07:28:00 GMT"', "plain"),
    ("299 - unquoted", "299 - unquoted"),
    ("garbage", "garbage"),
])
def test_format_warning(header: str, text: str) -> None:
    assert format_warning(header) == text
