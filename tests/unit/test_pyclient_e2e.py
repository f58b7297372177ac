"""tools/pyclient_e2e.py over a stand-in for the Python client's checkout: its tests import
``kubernetes.e2e_test`` from the checkout, the client itself from the installed package, read
the cluster's kubeconfig from ``$KUBECONFIG``, and run from the checkout's root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_BASE = "import os\n\ndef kubeconfig():\n    return os.environ['KUBECONFIG']\n"
_TEST = '''\
import os
from pathlib import Path

import kubernetes
from kubernetes.e2e_test import base


def test_sees_the_cluster_and_the_installed_client():
    assert Path(base.kubeconfig()).read_text() == "kubeconfig of the cluster"
    assert hasattr(kubernetes.client, "CoreV1Api")
    assert "site-packages" in kubernetes.client.__file__
    assert Path("kubernetes/e2e_test/test_yaml/x.yaml").is_file()


def test_fails():
    assert False
'''


def _checkout(tmp_path: Path) -> Path:
    suite = tmp_path / "python" / "kubernetes" / "e2e_test"
    (suite / "test_yaml").mkdir(parents=True)
    (suite / "__init__.py").write_text("")
    (suite / "base.py").write_text(_BASE)
    (suite / "test_stand_in.py").write_text(_TEST)
    (suite / "test_yaml" / "x.yaml").write_text("kind: Service\n")
    return tmp_path / "python"


def test_runs_the_suite_with_the_clusters_kubeconfig(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("kubeconfig of the cluster")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "pyclient_e2e.py"), str(checkout),
                        "--kubeconfig", str(kubeconfig), "--", "-q"],
                       capture_output=True, text=True, timeout=120, check=False)
    lines = r.stdout.splitlines()
    assert r.returncode == 1, r.stdout + r.stderr
    assert lines[-2:] == [
        "failed   test_stand_in.py::test_fails",
        "passed   test_stand_in.py::test_sees_the_cluster_and_the_installed_client"], r.stdout


def test_refuses_a_directory_that_is_not_the_suite(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "pyclient_e2e.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert "is not the Python client's e2e suite" in r.stderr
