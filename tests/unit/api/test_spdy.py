"""SPDY/3.1 framing (svcnet/api/spdy.py) against frames written by spdystream's Go framer (the
one kubectl uses: bytes below), and back."""

from __future__ import annotations

import hashlib

import pytest

from svcnet.api import spdy

# Written by moby/spdystream's spdy.Framer (one framer: the second SYN_STREAM's header block
# continues the first's zlib stream), as kubectl opens a port-forward pair.
SYN_ERROR = bytes.fromhex(
    "800300010000003e0000000100000000000078f9e3c6a7c202253a060606ce2248fc6482d22da30138e595"
    "14a526e6420b17d65450d0430aea22709eb030b03000000000ffff")
SYN_DATA = bytes.fromhex(
    "800300010000001c00000003000000000000826a46550a2a8712b1a844b302000000ffff")
DATA_FIN = bytes.fromhex("0000000101000000")
DATA = bytes.fromhex("0000000300000012474554202f20485454502f312e310d0a0d0a")
PING = bytes.fromhex("800300060000000400000001")
RST = bytes.fromhex("80030003000000080000000300000005")
GOAWAY = bytes.fromhex("80030007000000080000000300000000")
SETTINGS = bytes.fromhex("800300040000000c000000010000000700010000")
WINDOW = bytes.fromhex("800300090000000800000003000003e8")


def test_the_dictionary_is_spdy3s() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


def test_reads_what_kubectl_writes() -> None:
    codec = spdy.Codec()
    stream = SYN_ERROR + SYN_DATA + DATA_FIN + DATA + PING + RST + GOAWAY + SETTINGS + WINDOW
    frames = []
    for i in range(0, len(stream), 7):  # a tunnel may cut frames anywhere
        frames += codec.feed(stream[i:i + 7])
    error, data, fin, payload, ping, rst, goaway, settings, window = frames
    assert (error.kind, error.stream_id) == (spdy.SYN_STREAM, 1)
    assert error.headers == {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}
    assert data.header("streamType") == "data" and data.stream_id == 3
    assert (fin.kind, fin.stream_id, fin.fin, fin.data) == (spdy.DATA, 1, True, b"")
    assert payload.data == b"GET / HTTP/1.1\r\n\r\n" and not payload.fin
    assert (ping.kind, ping.value) == (spdy.PING, 1)
    assert (rst.kind, rst.stream_id, rst.value) == (spdy.RST_STREAM, 3, spdy.RST_CANCEL)
    assert (goaway.kind, goaway.stream_id, goaway.value) == (spdy.GOAWAY, 3, 0)
    assert settings.kind == spdy.SETTINGS
    assert (window.kind, window.stream_id, window.value) == (spdy.WINDOW_UPDATE, 3, 1000)


def test_writes_frames_as_spdystream_does() -> None:
    codec = spdy.Codec()
    assert codec.encode(spdy.Frame(spdy.DATA, 1, spdy.FLAG_FIN)) == DATA_FIN
    assert codec.encode(spdy.Frame(spdy.DATA, 3, data=b"GET / HTTP/1.1\r\n\r\n")) == DATA
    assert codec.encode(spdy.Frame(spdy.PING, value=1)) == PING
    assert codec.encode(spdy.Frame(spdy.RST_STREAM, 3, value=spdy.RST_CANCEL)) == RST
    assert codec.encode(spdy.Frame(spdy.GOAWAY, 3)) == GOAWAY
    assert codec.encode(spdy.Frame(spdy.WINDOW_UPDATE, 3, value=1000)) == WINDOW


def test_header_blocks_share_one_zlib_stream_per_direction() -> None:
    writer, reader = spdy.Codec(), spdy.Codec()
    wire = b"".join(writer.encode(spdy.Frame(spdy.SYN_REPLY, sid, headers=h)) for sid, h in (
        (1, {}), (3, {"x": ["a", "b"]}), (5, {"Port": ["80"]})))
    replies = reader.feed(wire)
    assert [(f.kind, f.stream_id, f.headers) for f in replies] == [
        (spdy.SYN_REPLY, 1, {}), (spdy.SYN_REPLY, 3, {"x": ["a", "b"]}),
        (spdy.SYN_REPLY, 5, {"port": ["80"]})]
    # The frame layout before the block is SPDY's: control bit, version 3, type 2, length.
    assert wire[:8] == bytes.fromhex("8003000200000014")


def test_bad_input() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.Codec().feed(bytes.fromhex("8002000100000000"))  # SPDY/2
    with pytest.raises(spdy.SpdyError):
        spdy.Codec().feed(bytes.fromhex("80030001000000020000"))  # short SYN_STREAM
    with pytest.raises(spdy.SpdyError):
        spdy.Codec().feed(bytes.fromhex("800300020000000800000001deadbeef"))  # not zlib
    assert spdy.Codec().feed(bytes.fromhex("800300ff00000000")) == []  # unknown: ignored


def test_a_header_block_that_inflates_past_the_limit_is_refused() -> None:
    """A few hundred KiB of zeros deflate to almost nothing: the codec must not inflate them
    all (a decompression bomb), but refuse the frame."""
    sender = spdy.Codec()
    huge = {"x": ["a" * (spdy.MAX_HEADER_BYTES + 10)]}
    frame = sender.encode(spdy.Frame(spdy.SYN_STREAM, 1, headers=huge))
    with pytest.raises(spdy.SpdyError, match="header block larger than"):
        spdy.Codec().feed(frame)
