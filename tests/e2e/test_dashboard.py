"""`svcnet dashboard` in a real browser (Debian's headless chromium, driven by Playwright)
against a real `svcnet up` cluster running examples/frontend-backend.yaml.

The page must show the example's Services with their pods, follow a scale-up of the backend
within 2 s, show a rate for the NodePort Service once traffic goes through it (counted by the
nodes' nftables), and refuse a missing or bad token with 401. Needs root; the cluster and the
dashboard process are always removed.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.e2e.local_clusters import ROOT, SVCNET, LocalCluster, local_cluster

pytestmark = pytest.mark.root

CHROMIUM = "/usr/bin/chromium"
EXAMPLE = str(ROOT / "examples" / "frontend-backend.yaml")
BACKEND = '[data-service="default/backend"] [data-pod]'


@dataclass(frozen=True)
class Dashboard:
    url: str
    token_url: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory, "ds", "-f", EXAMPLE) as c:
        yield c


@pytest.fixture(scope="module")
def dashboard(cluster: LocalCluster) -> Iterator[Dashboard]:
    errors = cluster.home / "dashboard.stderr"
    with errors.open("w") as stderr, subprocess.Popen(
            [*SVCNET, "dashboard", "--kubeconfig", str(cluster.kubeconfig),
             "--listen", "127.0.0.1:0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr,
            text=True) as proc:
        try:
            assert proc.stdout is not None
            url = token_url = ""
            while not token_url:
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("svcnet dashboard serving "):
                    url = line.split()[-1]
                elif "?token=" in line:
                    token_url = line.split()[-1]
            assert url and token_url, f"dashboard did not start: {errors.read_text()}"
            yield Dashboard(url, token_url)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed")
        raise
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def _logged_in(page: Any, dashboard: Dashboard) -> None:
    response = page.goto(dashboard.token_url)
    assert response is not None and response.status == 200
    assert page.url == dashboard.url  # the token left the address bar
    page.wait_for_selector(BACKEND)


def test_missing_or_bad_token_is_refused(page: Any, dashboard: Dashboard) -> None:
    response = page.goto(dashboard.url)
    assert response.status == 401
    assert page.locator('input[name="token"]').count() == 1
    assert page.locator("[data-service]").count() == 0
    response = page.goto(dashboard.url + "?token=not-a-token")
    assert response.status == 401
    assert "refused" in page.locator(".error").inner_text()
    page.fill('input[name="token"]', "still-not-a-token")
    with page.expect_navigation() as nav:
        page.click('button[type="submit"]')
    assert nav.value.status == 401
    for path in ("api/view", "events", "api/explain?service=default/backend"):
        assert _status(dashboard.url + path) == 401, path


def test_page_shows_the_services_and_their_pods(page: Any, dashboard: Dashboard) -> None:
    _logged_in(page, dashboard)
    page.wait_for_function(
        "document.querySelectorAll('[data-service=\"default/backend\"] [data-pod]').length == 3")
    frontend = page.locator('[data-service="default/frontend"]')
    assert frontend.locator("[data-pod]").count() == 1
    assert "NodePort" in (frontend.text_content() or "")
    assert frontend.locator('[data-pod="frontend"]').get_attribute("data-state") == "ready"
    for node in ("node-1", "node-2"):
        assert page.locator(f'[data-node="{node}"]').count() == 1
    # A click shows what `svcnet explain` shows, per node.
    page.click('[data-service="default/backend"] .card')
    page.wait_for_selector("#explain-body pre")
    assert "Service default/backend on node node-1" in page.inner_text("#explain-body")


def test_scaling_the_backend_moves_the_picture(page: Any, dashboard: Dashboard,
                                               cluster: LocalCluster) -> None:
    _logged_in(page, dashboard)
    count = "document.querySelectorAll('[data-service=\"default/backend\"] [data-pod]').length"
    page.wait_for_function(f"{count} == 3")
    try:
        cluster.kubectl("scale", "deployment/backend", "--replicas=5")
        scaled = time.monotonic()
        page.wait_for_function(f"{count} == 5", timeout=2000)
        assert time.monotonic() - scaled < 2.0
    finally:
        cluster.kubectl("scale", "deployment/backend", "--replicas=3")
    page.wait_for_function(f"{count} == 3", timeout=30000)


def _node_ip(cluster: LocalCluster) -> str:
    node = json.loads(cluster.kubectl("get", "node", "node-1", "-o", "json"))
    return str(next(a["address"] for a in node["status"]["addresses"]
                    if a["type"] == "InternalIP"))


def test_nodeport_traffic_raises_the_services_rate(page: Any, dashboard: Dashboard,
                                                   cluster: LocalCluster) -> None:
    _logged_in(page, dashboard)
    rate = '[data-service="default/frontend"] text.rate'
    page.wait_for_selector(rate)
    url = f"http://{_node_ip(cluster)}:30080/"
    stop = threading.Event()
    answered: list[int] = []

    def send() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    answered.append(r.status)
            except OSError:
                pass
            time.sleep(0.05)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        page.wait_for_function(
            "(() => { const e = document.querySelector("
            "'[data-service=\"default/frontend\"] text.rate');"
            " return e && parseFloat(e.dataset.rate || '0') > 1; })()", timeout=20000)
        # The same rates in the terminal.
        top = cluster.svcnet("top", "services", "--kubeconfig", str(cluster.kubeconfig),
                             "--interval", "2").stdout
        frontend = next(line.split() for line in top.splitlines()
                        if line.split()[:2] == ["default", "frontend"])
        assert frontend[2] == "NodePort" and float(frontend[3]) > 1, top
    finally:
        stop.set()
        sender.join(10)
    assert answered, "no request reached the NodePort"
