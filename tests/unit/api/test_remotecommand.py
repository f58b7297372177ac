"""The exec/attach/port-forward channel protocols (svcnet/api/remotecommand.py) against the
bytes upstream's wsstream and the clients put on the wire."""

from __future__ import annotations

import json

import pytest

from svcnet.api import remotecommand as rc


@pytest.mark.parametrize("name", [rc.V1, rc.V2, rc.V3, rc.V4, rc.V5])
def test_binary_framing(name: str) -> None:
    p = rc.Protocol(name)
    assert p.encode(rc.STDOUT, b"hi") == b"\x01hi"
    assert p.decode(b"\x00data") == (rc.STDIN, b"data")
    # The Python client sends str stdin as a text frame: chr(0) + text.
    assert p.decode("\x00text") == (rc.STDIN, b"text")
    assert p.decode(b"\xff\x00") == (rc.CLOSE, b"\x00")


@pytest.mark.parametrize("name", [rc.BASE64, rc.V4_BASE64])
def test_base64_framing(name: str) -> None:
    p = rc.Protocol(name)
    assert p.encode(rc.STDERR, b"hi\n") == "2aGkK"
    assert p.decode("0aGkK") == (rc.STDIN, b"hi\n")
    for bad in ("", "x", "0!!"):
        with pytest.raises(rc.ProtocolError):
            p.decode(bad)


def test_empty_binary_message_is_an_error() -> None:
    with pytest.raises(rc.ProtocolError):
        rc.Protocol(rc.V4).decode(b"")


def test_negotiation_follows_the_clients_order() -> None:
    offered = rc.offered_protocols("v5.channel.k8s.io, v4.channel.k8s.io")
    assert rc.negotiate(offered, rc.EXEC_PROTOCOLS) == rc.V5
    assert rc.negotiate(offered, rc.PORT_FORWARD_PROTOCOLS) == rc.V4
    assert rc.negotiate(["SPDY/3.1+portforward.k8s.io"], rc.PORT_FORWARD_PROTOCOLS) == (
        rc.SPDY_PORT_FORWARD)
    assert rc.negotiate(["SPDY/3.1+portforward.k8s.io"], rc.EXEC_PROTOCOLS) is None
    assert rc.Protocol(rc.V5).close_signal and not rc.Protocol(rc.V4).close_signal


def test_exit_status_is_what_kubectl_and_the_python_client_read() -> None:
    assert rc.exit_status(0, ["ls"]) == {"metadata": {}, "status": "Success"}
    status = rc.exit_status(3, ["sh", "-c", "exit 3"])
    assert status["reason"] == "NonZeroExitCode"
    assert status["message"] == ("command terminated with non-zero exit code: error executing "
                                 "command [sh -c exit 3], exit code 3")
    assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert json.loads(rc.error_payload(rc.Protocol(rc.V4), status)) == status
    assert rc.error_payload(rc.Protocol(rc.V1), status) == status["message"].encode()
    assert rc.error_payload(rc.Protocol(rc.V1), rc.exit_status(0, [])) == b""


def test_resize_messages() -> None:
    assert rc.parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    for bad in (b"", b"[]", b'{"Width":0,"Height":1}', b'{"Width":"x"}', b"{"):
        assert rc.parse_resize(bad) is None


def test_port_forward_channels() -> None:
    assert rc.port_prefix(8080) == b"\x90\x1f"
    assert [rc.data_channel(1), rc.error_channel(1)] == [2, 3]
