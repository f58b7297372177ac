"""Go's ``time.Duration.String``, for the texts Kubernetes prints durations in.

Theory of operation. Go's ``time/time.go`` (``Duration.String``) writes a duration under a second
in the largest unit that fits (``313ms``, ``1.5µs``, ``7ns``), and anything longer as hours,
minutes and seconds with the seconds' fraction trimmed of trailing zeros (``1.661s``, ``1m20s``,
``5m0s``, ``1h0m0s``); zero is ``0s``. The protobuf ``Duration`` of the API, the kubelet's
``Successfully pulled image ... in 1.661s`` and its ``back-off 5m0s restarting ...`` all print
this way.
"""

from __future__ import annotations

__all__ = ["go_duration"]


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
