"""Merge patches from wrk (C, one thread) instead of Python clients, for bench/workers.py.

The benches' load generator is Python (aiohttp) on the same two cores as the server: at a few
hundred writes/s its 16 clients take a good part of a core that the server would otherwise
have, so the server's latency they report includes waiting for their own CPU. wrk (Debian
package ``wrk``) sends the same requests from one C thread for a small fraction of that, so
the two generators side by side show how much of a figure is the generator's.

The load is bench/write_cpu.py's patches: 16 connections (kept alive, over HTTPS, with the
same bearer token) each sending, as soon as its last answer came, a merge patch of the label
``u`` of ``svc-<random below n>``. wrk runs for a fixed time, not a fixed count (stopping one
of its threads early does not end the run); the count is what it reports, and the few
patches still in flight when it stops (at most 16) reach the server uncounted. Its latency
distribution comes back as 1000 quantiles (wrk's Lua API gives percentiles, not samples), so
percentiles over several batches of about the same size weigh them alike.

A status other than 2xx, or a socket error, fails the batch.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile

CONNECTIONS = 16
QUANTILES = 1000

_SCRIPT = r"""
local n = tonumber(os.getenv("WRK_N"))
local seq = os.getenv("WRK_SEQ")
local path = os.getenv("WRK_PATH")
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/merge-patch+json"
wrk.headers["Authorization"] = os.getenv("WRK_AUTH")
local sent = 0

init = function(args)
  math.randomseed(tonumber(os.getenv("WRK_SEED")))
end

request = function()
  sent = sent + 1
  local body = '{"metadata":{"labels":{"u":"' .. seq .. '-' .. sent .. '"}}}'
  return wrk.format(nil, path .. "/svc-" .. math.random(0, n - 1), nil, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d\n", summary.requests, summary.duration, e.status,
                         e.connect + e.read + e.write + e.timeout))
  for i = 0, QUANTILES - 1 do
    io.write(string.format("Q %.1f\n", latency:percentile((i + 0.5) * 100 / QUANTILES)))
  end
end
""".replace("QUANTILES", str(QUANTILES))


def available() -> bool:
    return shutil.which("wrk") is not None


async def patches(url: str, authorization: str, path: str, n: int, seq: str,
                  seconds: float) -> tuple[int, float, list[float]]:
    """Patches for ``seconds``: (count, wall seconds, latency quantiles in seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_SCRIPT)
        script.flush()
        env = {**os.environ, "WRK_N": str(n), "WRK_SEQ": seq, "WRK_PATH": path,
               "WRK_AUTH": authorization, "WRK_SEED": str(int.from_bytes(os.urandom(4)))}
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
            "-s", script.name, url, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    text = out.decode()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()}{text}")
    summary = next(line.split()[1:] for line in text.splitlines() if line.startswith("WRK "))
    count, micros, status_errors, socket_errors = map(int, summary)
    if status_errors or socket_errors:
        raise RuntimeError(f"wrk: {status_errors} answers not 2xx, {socket_errors} socket "
                           f"errors of {count}: {url}{path}")
    quantiles = [float(line.split()[1]) / 1e6 for line in text.splitlines()
                 if line.startswith("Q ")]
    return count, micros / 1e6, quantiles
