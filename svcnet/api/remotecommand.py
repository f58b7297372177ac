"""The streaming protocols of ``pods/exec``, ``pods/attach`` and ``pods/portforward`` over
WebSocket, as data: subprotocol negotiation, channel framing, and the exit status.

Theory of operation
-------------------
Followed: staging/src/k8s.io/apimachinery/pkg/util/remotecommand/constants.go (the protocol
names), staging/src/k8s.io/apiserver/pkg/util/wsstream/conn.go (the framing) and
pkg/kubelet/cri/streaming/remotecommand/websocket.go + httpstream.go (the exit status), and
pkg/kubelet/cri/streaming/portforward/websocket.go (port-forward channels).

One WebSocket carries numbered channels. Every binary message starts with its channel
number: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. The protocols differ in:

* ``channel.k8s.io`` (v1), ``v2``/``v3.channel.k8s.io``: binary frames; the error channel
  carries a plain text message;
* ``base64.channel.k8s.io`` (and ``v4.base64.channel.k8s.io``): text frames, the channel as
  an ASCII digit followed by the data in base64;
* ``v4.channel.k8s.io``: the error channel carries a ``metav1.Status`` (Success, or Failure
  with reason ``NonZeroExitCode`` and the exit code as the ``ExitCode`` cause);
* ``v5.channel.k8s.io``: v4 plus a close signal: channel 255 followed by the number of the
  channel the client has finished writing (stdin), since a WebSocket cannot half-close.

Resize messages (channel 4) are JSON ``{"Width": w, "Height": h}``.

Port-forward over WebSocket (``portforward.k8s.io``, the Python client's protocol, framed as
``v4.channel.k8s.io``): the ``ports`` query lists ports; port ``i`` gets data channel ``2i``
and error channel ``2i+1``, and the first message the server sends on each of them is the
port, two bytes little-endian.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from svcnet.api.errors import bad_request

#: The largest WebSocket message a stream relay accepts (aiohttp's 0 means unlimited, which
#: lets one message fill memory): kubectl and the Python client send at most 32 KiB at a time.
MAX_MESSAGE_BYTES = 4 << 20

STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
ERROR: Final = 3
RESIZE: Final = 4
CLOSE: Final = 255

V1: Final = "channel.k8s.io"
V2: Final = "v2.channel.k8s.io"
V3: Final = "v3.channel.k8s.io"
V4: Final = "v4.channel.k8s.io"
V5: Final = "v5.channel.k8s.io"
BASE64: Final = "base64.channel.k8s.io"
V4_BASE64: Final = "v4.base64.channel.k8s.io"

#: What a server offers, most preferred first.
EXEC_PROTOCOLS: Final = (V5, V4, V3, V2, V1, V4_BASE64, BASE64)
SPDY_PORT_FORWARD: Final = "SPDY/3.1+portforward.k8s.io"
"""kubectl's port-forward: SPDY/3.1 (svcnet/api/spdy.py) tunnelled in the WebSocket's binary
messages (client-go's tunneling_connection.go)."""
PORT_FORWARD_PROTOCOLS: Final = (V4, V4_BASE64, BASE64, SPDY_PORT_FORWARD)
PORT_FORWARD_V1: Final = "portforward.k8s.io"
"""Plain SPDY port-forward's ``X-Stream-Protocol-Version`` (kubectl before 1.30)."""


class ProtocolError(ValueError):
    """A message that does not follow the negotiated protocol."""


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str

    @property
    def base64(self) -> bool:
        return self.name in (BASE64, V4_BASE64)

    @property
    def status_errors(self) -> bool:
        """Whether the error channel carries a metav1.Status (v4 and later)."""
        return self.name in (V4, V5, V4_BASE64)

    @property
    def close_signal(self) -> bool:
        return self.name == V5

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """One message: bytes for a binary frame, str for a text (base64) frame."""
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(data).decode()
        return bytes((channel,)) + data

    def decode(self, message: bytes | str) -> tuple[int, bytes]:
        """(channel, data) of a received message."""
        if isinstance(message, str) and not self.base64:
            # A text frame on a binary protocol is read as its bytes, as wsstream reads it
            # (the Python client sends str stdin that way: chr(channel) + text).
            message = message.encode("utf-8")
        if isinstance(message, str):
            if not message:
                raise ProtocolError("empty message")
            channel = ord(message[0]) - ord("0")
            if not 0 <= channel <= 9:
                raise ProtocolError(f"invalid channel {message[0]!r}")
            try:
                return channel, base64.b64decode(message[1:], validate=True)
            except binascii.Error as e:
                raise ProtocolError(f"invalid base64 data: {e}") from None
        if not message:
            raise ProtocolError("empty message")
        return message[0], bytes(message[1:])


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first of the client's protocols that the server supports (wsstream's rule: the
    client's order), or None."""
    for p in offered:
        if p in supported:
            return p
    return None


def offered_protocols(header: str) -> list[str]:
    """The ``Sec-WebSocket-Protocol`` list of a request."""
    return [p.strip() for p in header.split(",") if p.strip()]


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The v4 error-channel Status for a command that ended with ``code``."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": (f"command terminated with non-zero exit code: error executing "
                        f"command {_go_list(command)}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str, reason: str = "InternalError", code: int = 500
                   ) -> dict[str, Any]:
    """The v4 error-channel Status for a command that could not run at all."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason,
            "code": code}


def error_payload(protocol: Protocol, status: dict[str, Any]) -> bytes:
    """What goes on the error channel: the Status (v4+) or its message (v1-v3)."""
    if protocol.status_errors:
        return json.dumps(status).encode()
    if status.get("status") == "Success":
        return b""
    return str(status.get("message", "")).encode()


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(columns, rows) of a resize message, or None if it is not one."""
    try:
        doc = json.loads(data)
        width, height = int(doc.get("Width", 0)), int(doc.get("Height", 0))
    except (ValueError, TypeError, AttributeError):
        return None
    if width <= 0 or height <= 0 or width > 0xFFFF or height > 0xFFFF:
        return None
    return width, height


def parse_ports(values: list[str]) -> list[int]:
    """The ``ports`` query values as port numbers (400 for anything else): checked by the
    API server before it dials the node, and by the node."""
    ports: list[int] = []
    for value in values:
        for raw in value.split(","):
            item = raw.strip()
            try:
                port = int(item)
            except ValueError:
                raise bad_request(f'unable to parse "{item}" as a port: invalid syntax'
                                  ) from None
            if not 0 < port < 65536:
                raise bad_request(f"port {port} must be > 0 and < 65536")
            ports.append(port)
    if not ports:
        raise bad_request("query parameter \"ports\" is required")
    return ports


def port_prefix(port: int) -> bytes:
    return port.to_bytes(2, "little")


def data_channel(index: int) -> int:
    return 2 * index


def error_channel(index: int) -> int:
    return 2 * index + 1


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"
