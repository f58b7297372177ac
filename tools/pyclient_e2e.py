"""Run the official Python client's own end-to-end suite against a running svcnet cluster.

    .venv/bin/python tools/pyclient_e2e.py CHECKOUT [--kubeconfig FILE] [-- PYTEST_ARGS...]

CHECKOUT is a clone of the kubernetes-client/python repository (any directory holding its
``kubernetes/e2e_test/``); the suite is in neither the client's wheel nor its sdist, so it
cannot ship with svcnet. The suite loads its configuration from ``$KUBECONFIG`` (its
``base.get_e2e_configuration``), which this sets to the cluster's kubeconfig (``--kubeconfig``,
else ``$KUBECONFIG``, else the default cluster's, ``~/.svcnet/svcnet/kubeconfig``); nothing
else of the suite is changed.

The tests run with the *installed* ``kubernetes`` package (svcnet's test dependency), whose
``__path__`` is extended with the checkout's ``kubernetes/`` so that ``kubernetes.e2e_test``
imports from there; test files are imported by path (``--import-mode=importlib``), so the
checkout's copy of the client never shadows the installed one.

The suite's pods name public images (busybox, nginx, python): run it against a cluster whose
nodes use the process runtime (``svcnet up --container-runtime process``), where a pod's
command runs on the host's file system and nothing is pulled, so no request leaves the machine.
The result is pytest's, followed by one line per test; docs/PYTHON_CLIENT_E2E.md lists the
tests that need kinds svcnet does not serve.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import pytest


class _ClientSuite:
    """A pytest plugin: the checkout's ``e2e_test`` becomes ``kubernetes.e2e_test``."""

    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout
        self.outcomes: dict[str, str] = {}

    def pytest_configure(self, config: Any) -> None:
        import kubernetes

        kubernetes.__path__.append(str(self.checkout / "kubernetes"))

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.outcomes.setdefault(report.nodeid, report.outcome)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--kubeconfig")
    args, pytest_args = parser.parse_known_args(argv)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    args.checkout = args.checkout.resolve()
    suite = args.checkout / "kubernetes" / "e2e_test"
    if not (suite / "base.py").is_file():
        print(f"error: {suite} is not the Python client's e2e suite", file=sys.stderr)
        return 1
    kubeconfig = (args.kubeconfig or os.environ.get("KUBECONFIG")
                  or str(Path.home() / ".svcnet" / "svcnet" / "kubeconfig"))
    if not Path(kubeconfig).is_file():
        print(f"error: no kubeconfig at {kubeconfig}: is the cluster up?", file=sys.stderr)
        return 1
    os.environ["KUBECONFIG"] = str(Path(kubeconfig).resolve())
    os.chdir(args.checkout)  # the suite names its YAML files relative to the checkout
    plugin = _ClientSuite(args.checkout)
    code = pytest.main(["--import-mode=importlib", "-p", "no:cacheprovider",
                        "--rootdir", str(suite), str(suite), *pytest_args],
                       plugins=[plugin])
    for nodeid, outcome in sorted(plugin.outcomes.items()):
        print(f"{outcome:8} {nodeid}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
