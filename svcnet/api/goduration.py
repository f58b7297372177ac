"""Go's ``time.Duration.String``, for the texts Kubernetes prints durations in.

Theory of operation. Go's ``time/time.go`` (``Duration.String``) writes a duration under a second
in the largest unit that fits (``313ms``, ``1.5µs``, ``7ns``), and anything longer as hours,
minutes and seconds with the seconds' fraction trimmed of trailing zeros (``1.661s``, ``1m20s``,
``5m0s``, ``1h0m0s``); zero is ``0s``. The protobuf ``Duration`` of the API, the kubelet's
``Successfully pulled image ... in 1.661s`` and its ``back-off 5m0s restarting ...`` all print
this way. :func:`parse_go_duration` reads them back (``time.ParseDuration``: a sequence of
decimal numbers with units ``ns us µs ms s m h``, as metav1.Duration's JSON carries them).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = ["go_duration", "parse_go_duration"]

_UNIT_NANOS: Final = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
                      "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_TERM: Final = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(nanos: int) -> str:
    """``time.Duration(nanos).String()``."""
    if nanos == 0:
        return "0s"
    sign, n = ("-", -nanos) if nanos < 0 else ("", nanos)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _trim(n, size) + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return sign + out + _trim(rest, 1_000_000_000) + "s"


def _trim(n: int, unit: int) -> str:
    whole, frac = divmod(n, unit)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".") if frac else str(whole)


def parse_go_duration(text: str) -> int:
    """``time.ParseDuration(text)`` in nanoseconds (truncated); ``ValueError`` if malformed."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"time: invalid duration {text!r}")
    total, pos = Decimal(0), 0
    while pos < len(body):
        m = _TERM.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {text!r}")
        try:
            total += Decimal(m.group(1)) * _UNIT_NANOS[m.group(2)]
        except InvalidOperation:
            raise ValueError(f"time: invalid duration {text!r}") from None
        pos = m.end()
    nanos = int(total)
    return -nanos if text.startswith("-") else nanos
