"""Regenerate docs/dashboard.png, the README's picture of `svcnet dashboard`.

    sudo .venv/bin/python tools/screenshot.py [--out docs/dashboard.png]

Brings up a throw-away cluster (``svcnet up --zones a,b``, a random name ``shot...``, state in
a temporary directory) with examples/frontend-backend.yaml and examples/loadbalancer-local.yaml,
sends a few requests per second through the frontend's NodePort and the LoadBalancer IP so
the rates show, starts ``svcnet dashboard`` on a free loopback port, opens it in Debian's
headless chromium (Playwright, never a downloaded browser), clicks the backend Service so the
``svcnet explain`` panel shows, and saves a screenshot. The cluster and the dashboard are
always removed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
CHROMIUM = "/usr/bin/chromium"


def _traffic(urls: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=3) as r:
                    r.read()
            except OSError:
                pass
        time.sleep(0.1)


def _shoot(token_url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 640})
        page.goto(token_url)
        page.wait_for_selector('[data-service="default/backend"] [data-pod]')
        # Wait for the rates (two counter samples, a few seconds apart).
        page.wait_for_function(
            "(() => { const e = document.querySelector("
            "'[data-service=\"default/frontend\"] text.rate');"
            " return e && parseFloat(e.dataset.rate || '0') > 0; })()", timeout=30000)
        page.click('[data-service="default/backend"] .card')
        page.wait_for_selector("#explain-body pre")
        page.screenshot(path=str(out), full_page=False)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="svcnet-shot-"))
    env = dict(os.environ, SVCNET_HOME=str(home))
    name = f"shot{secrets.token_hex(3)}"
    examples = [str(ROOT / "examples" / f) for f in ("frontend-backend.yaml",
                                                       "loadbalancer-local.yaml")]
    stop = threading.Event()
    dashboard = None
    try:
        subprocess.run([*SVCNET, "up", "--name", name, "--detach", "--zones", "a,b",
                        *(a for f in examples for a in ("-f", f))],
                       env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        kubeconfig = home / name / "kubeconfig"
        nodes = json.loads(subprocess.run(
            [*SVCNET, "get", "nodes", "-o", "json", "--kubeconfig", str(kubeconfig)],
            env=env, check=True, capture_output=True, text=True).stdout)["items"]
        node_ip = next(a["address"] for a in nodes[0]["status"]["addresses"]
                       if a["type"] == "InternalIP")
        echo = json.loads(subprocess.run(
            [*SVCNET, "get", "service", "echo", "-o", "json", "--kubeconfig", str(kubeconfig)],
            env=env, check=True, capture_output=True, text=True).stdout)
        lb_ip = echo["status"]["loadBalancer"]["ingress"][0]["ip"]
        threading.Thread(target=_traffic, args=(
            [f"http://{node_ip}:30080/", f"http://{lb_ip}/"], stop), daemon=True).start()
        dashboard = subprocess.Popen(
            [*SVCNET, "dashboard", "--kubeconfig", str(kubeconfig), "--listen", "127.0.0.1:0"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert dashboard.stdout is not None
        token_url = ""
        while not token_url:
            line = dashboard.stdout.readline()
            if not line:
                raise SystemExit("svcnet dashboard did not start")
            if "?token=" in line:
                token_url = line.split()[-1]
        _shoot(token_url, args.out)
        print(f"wrote {args.out}")
    finally:
        stop.set()
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(10)
            if dashboard.stdout is not None:
                dashboard.stdout.close()
        subprocess.run([*SVCNET, "down", "--name", name], env=env, check=False, cwd=ROOT,
                       stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
