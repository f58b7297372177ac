"""kill -9 of `svcnet server` under 16 concurrent writers, many times, on SQLite and on etcd.

Each round: 16 writers create (half NodePort), patch and delete Services for 1-2.5 s, the server
is killed with SIGKILL mid-flight, restarted on the same store, and every acknowledged write is
audited (tests/e2e/crash_audit.py says how). Prints, per store, the writes acknowledged and the
lost / resurrected / phantom / moved / double-allocated counts after every kill.

Run: .venv/bin/python bench/crash.py [--kills 8] [--stores sqlite,etcd]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e import crash_audit
from tests.etcd_server import EtcdServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--stores", default="sqlite,etcd")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    for kind in args.stores.split(","):
        etcd = EtcdServer() if kind == "etcd" else None
        store_args = []
        if etcd is not None:
            store_args = ["--store", f"etcd://{etcd.start()}/svcnet-bench-crash/"]
        try:
            with tempfile.TemporaryDirectory(prefix="svcnet-crash-") as d:
                audits = crash_audit.run(Path(d), store_args, kills=args.kills,
                                         writers=args.writers, seed=7)
        finally:
            if etcd is not None:
                etcd.stop()
        before = 0
        print(f"\n{kind}: {args.kills} kills, {args.writers} writers")
        print("kill  acknowledged  services  lost  resurrected  phantom  moved  double")
        for n, a in enumerate(audits, 1):
            print(f"{n:>4}  {a.acknowledged - before:>12}  {a.services:>8}  {len(a.lost):>4}  "
                  f"{len(a.resurrected):>11}  {len(a.phantom):>7}  {len(a.moved):>5}  "
                  f"{len(a.double):>6}")
            before = a.acknowledged
            for problem in a.lost + a.resurrected + a.phantom + a.moved + a.double:
                print(f"      {problem}")
        total = audits[-1].acknowledged if audits else 0
        bad = sum(len(a.lost) + len(a.resurrected) + len(a.phantom) + len(a.moved) +
                  len(a.double) for a in audits)
        print(f"total: {total} writes acknowledged, {bad} problems")


if __name__ == "__main__":
    main()
