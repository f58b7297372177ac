"""What the benchmark scripts measure with: percentiles and a process's resident memory.
(Scripts import it as ``stats``: their own directory is first on ``sys.path``.)"""

from __future__ import annotations

from pathlib import Path


def pct(values: list[float], p: float) -> float:
    """The ``p`` quantile (0..1) of ``values``, nearest rank; NaN when there are none."""
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of process ``pid`` in MiB (NaN if it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
