"""Pods from container images on a whole `svcnet up` cluster: containerd on each node (CRI), the
CNI plugin, images from a registry on the host's loopback, with the real kubectl.

What a Kubernetes user does first, and what must hold for it: ``kubectl create deployment`` from
an image, ``kubectl expose`` it as a NodePort, traffic from the host spread over the containers
on both nodes (also through a ``docker.io`` mirror, with ``image: web``); a missing image's
ErrImagePull / ImagePullBackOff and its recovery; CrashLoopBackOff with ``--previous`` logs;
OOMKilled at a memory limit; a rolling update from :1 to :2 without a failed request; logs,
``logs -f`` and exec in containers; ``kill -9`` of containerd and of a node agent losing no pod
and leaking no address.

Needs root, containerd, runc, docker-registry and busybox-static (CI installs them). Cluster
name "ec" plus random hex, on the first free node network, always removed by `svcnet down`. No
request leaves the machine: every image name is the local registry's or resolves through the
mirror, which is also the `server` (no fall-back to Docker Hub).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.api.resourcelists import parse_quantity
from svcnet.cluster.state import Paths, live_processes
from tests.conftest import require_binary, require_root
from tests.e2e.local_clusters import network_of, unique_name
from tests.images import crash_image, hog_image, user_image, web_image
from tests.registry_server import RegistryServer
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
NAME = unique_name("ec")
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
pytestmark = pytest.mark.root


class Cluster:
    def __init__(self, home: Path, registry: RegistryServer) -> None:
        self.home, self.registry = home, registry
        self.paths = Paths(home / NAME)

    def node_ip(self, index: int) -> str:
        return network_of(self.home, NAME).node_ip(index)

    def env(self) -> dict[str, str]:
        return dict(os.environ, SVCNET_HOME=str(self.home),
                    KUBECONFIG=str(self.home / NAME / "kubeconfig"),
                    KUBECACHEDIR=str(self.home / "kcache"))

    def kubectl(self, *args: str, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=self.env(),
                           input=input, timeout=60, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.returncode}\n{r.stderr}")
        return r

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        return list(self.get("pods", "-l", selector)["items"])

    def ready(self, selector: str, count: int) -> bool:
        pods = [p for p in self.pods(selector) if not p["metadata"].get("deletionTimestamp")]
        return len(pods) == count and all(
            any(c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])) for p in pods)

    def node_port(self, service: str) -> int:
        return int(self.get("service", service)["spec"]["ports"][0]["nodePort"])

    def waiting_reason(self, pod: str) -> str:
        statuses = self.get("pod", pod).get("status", {}).get("containerStatuses") or [{}]
        return str(statuses[0].get("state", {}).get("waiting", {}).get("reason", ""))

    def events(self, pod: str) -> list[tuple[str, str, str]]:
        """The pod's Events: (type, reason, message)."""
        items = self.get("events", "--field-selector", f"involvedObject.name={pod}")["items"]
        return [(e.get("type", ""), e.get("reason", ""), e.get("message", "")) for e in items]


def http_get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode().strip())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            registry: RegistryServer) -> Iterator[Cluster]:
    require_root()
    for tool in ("containerd", "runc", "ctr", "busybox", "nft"):
        require_binary(tool)
    home = tmp_path_factory.mktemp("svcnet-home")
    c = Cluster(home, registry)
    registry.push(web_image("v1"), "library/web", "1")  # docker.io/library/web, via the mirror
    r = subprocess.run([*SVCNET, "up", "--name", NAME, "--detach", "--container-runtime",
                        "containerd", "--metric-resolution", "2", "--registry-mirror",
                        f"docker.io=http://{registry.host}"],
                       capture_output=True, text=True, cwd=ROOT, env=c.env(), timeout=180,
                       check=False)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield c
    finally:
        subprocess.run([*SVCNET, "down", "--name", NAME], cwd=ROOT, env=c.env(), timeout=120,
                       check=False)


def test_deployment_from_an_image_behind_a_nodeport(cluster: Cluster) -> None:
    repo = cluster.registry.new_repo("web")
    cluster.registry.push(web_image("v1"), repo, "1")
    cluster.kubectl("create", "deployment", "web", f"--image={cluster.registry.ref(repo, '1')}",
                    "--replicas=3")
    cluster.kubectl("expose", "deployment", "web", "--port", "80", "--target-port", "8080",
                    "--type", "NodePort")
    wait_for(lambda: cluster.ready("app=web", 3), "3 web pods Ready", timeout=90,
             detail=lambda: cluster.kubectl("get", "pods", "-o", "wide").stdout)
    pods = cluster.pods("app=web")
    assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2"}
    status = pods[0]["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("containerd://")
    assert status["imageID"].startswith(f"{cluster.registry.host}/{repo}@sha256:")
    node = cluster.get("node", "node-1")
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    port = cluster.node_port("web")
    names = {p["metadata"]["name"] for p in pods}
    hits: Counter[str] = Counter()
    deadline = time.monotonic() + 30
    while set(hits) != names and time.monotonic() < deadline:
        for ip in (cluster.node_ip(1), cluster.node_ip(2), "127.0.0.1"):
            pod, version = http_get(f"http://{ip}:{port}/").split()
            assert version == "v1"
            hits[pod] += 1
    assert set(hits) == names, hits


def test_top_pod_reads_containerd_stats(cluster: Cluster) -> None:
    """kubectl top of image containers: the node agents' ListContainerStats through the real
    containerd (cgroup CPU time and working set), scraped into metrics.k8s.io."""
    cluster.kubectl("create", "deployment", "topped", "--image=docker.io/library/web:1")
    wait_for(lambda: cluster.ready("app=topped", 1), "the topped pod Ready", timeout=90)

    def rows() -> list[list[str]] | None:
        r = cluster.kubectl("top", "pod", "-l", "app=topped", "--no-headers", check=False)
        found = [line.split() for line in r.stdout.splitlines() if line.strip()]
        return found if r.returncode == 0 and len(found) == 1 else None

    try:
        [row] = wait_for(rows, "kubectl top pod to list the pod", timeout=60, interval=1)
        assert row[0].startswith("topped-") and re.fullmatch(r"\d+m", row[1]), row
        assert re.fullmatch(r"\d+Mi", row[2]), row
        raw = json.loads(cluster.kubectl(
            "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{row[0]}"
        ).stdout)
        [container] = raw["containers"]
        memory = parse_quantity(container["usage"]["memory"])
        assert memory is not None and memory > 0, container
    finally:
        cluster.kubectl("delete", "deployment", "topped", "--ignore-not-found")


def test_image_through_the_docker_io_mirror(cluster: Cluster) -> None:
    cluster.kubectl("run", "mirrored", "--image=web:1", "--port=8080")
    wait_for(lambda: cluster.ready("run=mirrored", 1), "the mirrored pod Ready", timeout=60,
             detail=lambda: json.dumps(cluster.get("pod", "mirrored").get("status")))
    pod = cluster.get("pod", "mirrored")
    # The image's repository digest (containerd names an image it holds under several
    # repositories by its first; this content was pulled as 127.0.0.1:PORT/web-0 too).
    assert pod["status"]["containerStatuses"][0]["imageID"].endswith(
        "@" + web_image("v1").digest)
    out = cluster.kubectl("exec", "mirrored", "--", "wget", "-qO-",
                          "http://127.0.0.1:8080/").stdout
    assert out.strip() == "mirrored v1"


def test_missing_image_backs_off_then_recovers(cluster: Cluster) -> None:
    repo = cluster.registry.new_repo("late")
    cluster.kubectl("run", "late", f"--image={cluster.registry.ref(repo, '1')}")
    wait_for(lambda: cluster.waiting_reason("late") in ("ErrImagePull", "ImagePullBackOff"),
             "ErrImagePull", timeout=30)
    wait_for(lambda: cluster.waiting_reason("late") == "ImagePullBackOff", "ImagePullBackOff",
             timeout=30)
    assert any(reason == "Failed" and "Failed to pull image" in message
               for _type, reason, message in cluster.events("late")), cluster.events("late")
    cluster.registry.push(web_image("v1"), repo, "1")
    wait_for(lambda: cluster.ready("run=late", 1), "the pod Ready once the image exists",
             timeout=60, detail=lambda: cluster.waiting_reason("late"))
    image = cluster.registry.ref(repo, "1")
    told = cluster.events("late")
    assert {("Normal", "Pulling", f'Pulling image "{image}"'),
            ("Warning", "Failed", "Error: ErrImagePull"),
            ("Normal", "BackOff", f'Back-off pulling image "{image}"'),
            ("Normal", "Created", "Created container: late"),
            ("Normal", "Started", "Started container late")} <= set(told), told
    assert any(reason == "Pulled" and message.startswith(
        f'Successfully pulled image "{image}" in ') and message.endswith(" bytes.")
        for _type, reason, message in told), told


def test_invalid_image_name(cluster: Cluster) -> None:
    # (kubectl run checks the name itself; a manifest reaches the node.)
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "badname"},
        "spec": {"containers": [{"name": "c", "image": "Web:1"}]}}))
    wait_for(lambda: cluster.waiting_reason("badname") == "InvalidImageName",
             "InvalidImageName", timeout=30)
    status = cluster.get("pod", "badname")["status"]["containerStatuses"][0]
    assert status["state"]["waiting"]["message"].endswith("repository name must be lowercase")


def test_pull_by_digest_with_an_image_pull_secret(cluster: Cluster,
                                                  registry_auth: RegistryServer) -> None:
    """A registry that wants credentials: the pod's docker-registry Secret gives them."""
    repo = registry_auth.new_repo("private")
    digest = registry_auth.push(web_image("v3"), repo, "1")
    ref = f"{registry_auth.host}/{repo}@{digest}"
    cluster.kubectl("run", "nocred", f"--image={ref}")
    wait_for(lambda: cluster.waiting_reason("nocred") in ("ErrImagePull", "ImagePullBackOff"),
             "a pull without credentials failing", timeout=30)
    assert registry_auth.auth is not None
    user, password = registry_auth.auth
    cluster.kubectl("create", "secret", "docker-registry", "regcred",
                    f"--docker-server={registry_auth.host}", f"--docker-username={user}",
                    f"--docker-password={password}")
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "withcred"},
                "spec": {"imagePullSecrets": [{"name": "regcred"}],
                         "initContainers": [{"name": "init", "image": ref,
                                             "command": ["sh", "-c", "echo init ran"]}],
                         "containers": [
                             {"name": "web", "image": ref},
                             {"name": "side", "image": ref,
                              "command": ["sh", "-c", "echo side; sleep 3600"]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    def running() -> bool:
        st = cluster.get("pod", "withcred").get("status", {})
        statuses = st.get("containerStatuses") or []
        return len(statuses) == 2 and all(c.get("ready") for c in statuses)

    wait_for(running, "the pod with credentials Running", timeout=60,
             detail=lambda: json.dumps(cluster.get("pod", "withcred").get("status")))
    status = cluster.get("pod", "withcred")["status"]
    assert status["containerStatuses"][0]["imageID"] == f"{registry_auth.host}/{repo}@{digest}"
    assert cluster.kubectl("logs", "withcred", "-c", "init").stdout == "init ran\n"
    assert cluster.kubectl("logs", "withcred", "-c", "side").stdout == "side\n"
    # Both containers share the pod's network: the side container reaches web on localhost.
    out = cluster.kubectl("exec", "withcred", "-c", "side", "--", "wget", "-qO-",
                          "http://127.0.0.1:8080/").stdout
    assert out == "withcred v3\n"


def test_crash_loop_and_previous_logs(cluster: Cluster) -> None:
    repo = cluster.registry.new_repo("crash")
    cluster.registry.push(crash_image(), repo, "1")
    cluster.kubectl("run", "crasher", f"--image={cluster.registry.ref(repo, '1')}")
    wait_for(lambda: cluster.waiting_reason("crasher") == "CrashLoopBackOff",
             "CrashLoopBackOff", timeout=60)
    status = cluster.get("pod", "crasher")["status"]["containerStatuses"][0]
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert cluster.kubectl("logs", "crasher", "--previous").stdout == "crashing\n"
    pod = cluster.get("pod", "crasher")
    backoff = ("Warning", "BackOff", "Back-off restarting failed container crasher in pod "
               f"crasher_{pod['metadata']['namespace']}({pod['metadata']['uid']})")
    assert backoff in cluster.events("crasher"), cluster.events("crasher")


def test_memory_limit_kills_with_oomkilled(cluster: Cluster) -> None:
    repo = cluster.registry.new_repo("hog")
    cluster.registry.push(hog_image(), repo, "1")
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog"},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "hog", "image": cluster.registry.ref(repo, "1"),
                    "resources": {"limits": {"memory": "48Mi"}}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def terminated() -> dict[str, Any] | None:
        statuses = cluster.get("pod", "hog").get("status", {}).get("containerStatuses") or [{}]
        state = statuses[0].get("state", {}).get("terminated")
        return state if isinstance(state, dict) else None

    state = wait_for(terminated, "the hog terminated", timeout=60)
    assert (state["reason"], state["exitCode"]) == ("OOMKilled", 137)
    assert cluster.get("pod", "hog")["status"]["phase"] == "Failed"


def test_security_context_reaches_the_container(cluster: Cluster) -> None:
    """runAsNonRoot refused for a root image (CreateContainerConfigError, as the kubelet);
    a locked-down container runs with a read-only root, no capabilities, no_new_privs and
    its supplemental groups; a privileged one gets every capability."""
    image = cluster.registry.ref("library/web", "1")

    def pod(name: str, pod_ctx: dict[str, Any], own: dict[str, Any]) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"securityContext": pod_ctx, "containers": [{
                               "name": "web", "image": image, "securityContext": own}]}})

    cluster.kubectl("apply", "-f", "-", input=pod("rootless", {"runAsNonRoot": True}, {}))
    cluster.kubectl("apply", "-f", "-", input=pod(
        "locked", {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 3000,
                   "supplementalGroups": [2000]},
        {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
         "capabilities": {"drop": ["ALL"]}}))
    cluster.kubectl("apply", "-f", "-", input=pod("privileged", {}, {"privileged": True}))
    wait_for(lambda: cluster.waiting_reason("rootless") == "CreateContainerConfigError",
             "runAsNonRoot refused", timeout=60)
    message = cluster.get("pod", "rootless")["status"]["containerStatuses"][0]["state"][
        "waiting"]["message"]
    assert message.startswith("container has runAsNonRoot and image will run as root"), message
    wait_for(lambda: cluster.ready("run!=none", len(cluster.pods("run!=none")) - 1)
             or all(cluster.get("pod", p)["status"].get("phase") == "Running"
                    for p in ("locked", "privileged")), "both run", timeout=60)
    status = cluster.kubectl("exec", "locked", "--", "cat", "/proc/self/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Uid"].split()[0] == "1000"
    assert {"2000", "3000"} <= set(fields["Groups"].split()), fields["Groups"]
    r = cluster.kubectl("exec", "locked", "--", "touch", "/www/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r.stderr
    privileged = cluster.kubectl("exec", "privileged", "--", "cat", "/proc/self/status").stdout
    ours = next(line for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("CapBnd:")).split()[1]  # all a container may get here
    assert f"CapEff:\t{ours}" in privileged, privileged
    cluster.kubectl("delete", "pod", "rootless", "locked", "privileged", "--wait=false")


def test_host_path_and_claim_volumes_in_a_container(cluster: Cluster, tmp_path: Path) -> None:
    """A hostPath volume (DirectoryOrCreate) and a claim bound by the PV binder to a static
    hostPath PersistentVolume, mounted read-only, through containerd's CRI mounts: the
    container writes to the one, reads the other and cannot write it; the host sees the
    file."""
    host, pv_path = tmp_path / "svcnet-hp" / "made", tmp_path / "svcnet-pv"
    try:
        pv_path.mkdir()
        (pv_path / "kept.txt").write_text("from the host\n")
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": NAME}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
            "storageClassName": NAME, "hostPath": {"path": str(pv_path), "type": "Directory"}}}
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "ctr-claim"}, "spec": {
                     "accessModes": ["ReadOnlyMany"], "storageClassName": NAME,
                     "resources": {"requests": {"storage": "1Gi"}}}}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "volumes"}, "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "volumes": [
                {"name": "host", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "ctr-claim",
                                                            "readOnly": True}}],
            "containers": [{
                "name": "main", "image": cluster.registry.ref("library/web", "1"),
                "args": ["echo from the container > /host/out.txt; cat /claim/kept.txt; "
                         "touch /claim/x 2>/dev/null || echo claim read-only"],
                "volumeMounts": [{"name": "host", "mountPath": "/host"},
                                 {"name": "claim", "mountPath": "/claim"}]}]}}
        for doc in (pv, claim, pod):
            cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))
        wait_for(lambda: cluster.get("pod", "volumes")["status"].get("phase") == "Succeeded",
                 "the pod to succeed", timeout=60,
                 detail=lambda: str(cluster.events("volumes")))
        assert cluster.kubectl("logs", "volumes").stdout == "from the host\nclaim read-only\n"
        assert (host / "out.txt").read_text() == "from the container\n"
        assert not (pv_path / "x").exists()
        cluster.kubectl("delete", "pod", "volumes", "--wait=false")
        cluster.kubectl("delete", "pvc", "ctr-claim", "--wait=false")
        cluster.kubectl("delete", "pv", NAME, "--wait=false")
    finally:
        shutil.rmtree(tmp_path / "svcnet-hp", ignore_errors=True)
        shutil.rmtree(pv_path, ignore_errors=True)


def test_image_user_and_logs_follow_and_exec(cluster: Cluster) -> None:
    repo = cluster.registry.new_repo("user")
    cluster.registry.push(user_image(), repo, "1")
    cluster.kubectl("run", "who", "--restart=Never", f"--image={cluster.registry.ref(repo, '1')}")
    wait_for(lambda: cluster.get("pod", "who")["status"].get("phase") == "Succeeded",
             "the pod Succeeded", timeout=60)
    assert cluster.kubectl("logs", "who").stdout == "1000\n"
    assert cluster.kubectl("logs", "who", "--timestamps").stdout.split()[0].endswith("Z")
    assert cluster.kubectl("logs", "who", "--since=1h").stdout == "1000\n"
    assert cluster.kubectl("logs", "who", "--since-time=2999-01-01T00:00:00Z").stdout == ""
    r = cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/who/log?sinceTime=soon",
                        check=False)
    assert 'parsing time "soon"' in r.stderr, r.stderr
    pod = cluster.pods("app=web")[0]["metadata"]["name"]
    with subprocess.Popen(["kubectl", "logs", "-f", pod], stdout=subprocess.PIPE, text=True,
                          env=cluster.env()) as follow:
        try:
            time.sleep(1)
            assert follow.poll() is None  # still following the running container
        finally:
            follow.terminate()
    out = cluster.kubectl("exec", pod, "--", "sh", "-c", "hostname; id -u; ls /www").stdout
    assert out.split() == [pod, "0", "cgi-bin", "healthz"]
    # The kubelet-managed hosts file, mounted over the image's /etc/hosts.
    ip = cluster.get("pod", pod)["status"]["podIP"]
    hosts = cluster.kubectl("exec", pod, "--", "cat", "/etc/hosts").stdout
    assert hosts.startswith("# Kubernetes-managed hosts file.\n"), hosts
    assert hosts.endswith(f"{ip}\t{pod}\n"), hosts
    with subprocess.Popen(["kubectl", "port-forward", f"pod/{pod}", ":8080"],
                          stdout=subprocess.PIPE, text=True, env=cluster.env()) as forward:
        try:
            assert forward.stdout is not None
            line = forward.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> 8080
            local = int(line.split("127.0.0.1:")[1].split()[0])
            assert http_get(f"http://127.0.0.1:{local}/") == f"{pod} v1"
        finally:
            forward.terminate()


def test_exec_attach_and_port_forward_go_through_the_cri(cluster: Cluster) -> None:
    """The runtime runs them: exec'd commands live in the container's own cgroup (a command
    the agent started itself would not), stdin's end reaches them, exit codes come back,
    attach reaches a container's stdin, and a port nobody listens on gets containerd's
    reason."""
    pod = cluster.pods("app=web")[0]
    name = pod["metadata"]["name"]
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    assert cid in cluster.kubectl("exec", name, "--", "cat", "/proc/self/cgroup").stdout
    assert cluster.kubectl("exec", "-i", name, "--", "tr", "a-z", "A-Z",
                           input="piped through\n").stdout == "PIPED THROUGH\n"
    r = cluster.kubectl("exec", name, "--", "sh", "-c", "echo bye >&2; exit 3", check=False)
    assert (r.returncode, r.stderr.splitlines()[0]) == (3, "bye"), r.stderr
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "reader", "image": cluster.registry.ref("library/web", "1"),
            "stdin": True, "command": ["sh", "-c", "while read l; do echo got $l; done"]}]}}))
    wait_for(lambda: cluster.get("pod", "reader")["status"].get("phase") == "Running",
             "the reader runs", timeout=60)
    with subprocess.Popen(["kubectl", "attach", "-i", "reader"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=cluster.env()) as attach:
        assert attach.stdin is not None and attach.stdout is not None
        attach.stdin.write("hello\n")
        attach.stdin.flush()
        try:
            assert attach.stdout.readline() == "got hello\n"
        finally:
            attach.stdin.close()  # containerd detaches when stdin ends
            assert attach.wait(timeout=30) == 0, attach.stderr.read() if attach.stderr else ""
    with subprocess.Popen(["kubectl", "port-forward", f"pod/{name}", ":8080", ":81"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=cluster.env()) as forward:
        try:
            assert forward.stdout is not None and forward.stderr is not None
            local: list[int] = []
            while len(local) < 2:  # Forwarding from 127.0.0.1:PORT -> 8080, then -> 81
                line = forward.stdout.readline()
                if line.startswith("Forwarding from 127.0.0.1:"):
                    local.append(int(line.split("127.0.0.1:")[1].split()[0]))
            assert http_get(f"http://127.0.0.1:{local[0]}/") == f"{name} v1"
            with pytest.raises(OSError):
                http_get(f"http://127.0.0.1:{local[1]}/")
        finally:
            forward.terminate()
        assert "failed to connect to localhost:81" in forward.stderr.read()


def test_rolling_update_fails_no_request(cluster: Cluster) -> None:
    repo = cluster.registry.new_repo("roll")
    for version in ("1", "2"):
        cluster.registry.push(web_image(f"v{version}"), repo, version)
    ref = cluster.registry.ref(repo, "1")
    # httpd exits at once on SIGTERM; like any app behind a Service, it keeps serving for a
    # moment while its endpoint is withdrawn everywhere (a preStop sleep would do the same).
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "roll"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "roll"}},
                 "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": "roll"}}, "spec": {
                     "terminationGracePeriodSeconds": 10,
                     "containers": [{
                         "name": "web", "image": ref,
                         "command": ["/bin/sh", "-c",
                                     "httpd -f -p 8080 -h /www & pid=$!; "
                                     "trap 'sleep 2; kill $pid; exit 0' TERM; wait"],
                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                            "periodSeconds": 1},
                         # Through CRI ExecSync, in the container's own file system.
                         "livenessProbe": {"exec": {"command": ["test", "-f", "/www/healthz"]},
                                           "periodSeconds": 1, "failureThreshold": 1}}]}}}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    cluster.kubectl("expose", "deployment", "roll", "--port", "80", "--target-port", "8080",
                    "--type", "NodePort")
    wait_for(lambda: cluster.ready("app=roll", 2), "2 roll pods Ready", timeout=60)
    port = cluster.node_port("roll")
    wait_for(lambda: http_get(f"http://{cluster.node_ip(1)}:{port}/").endswith("v1"),
             "v1 answering")
    seen: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            try:
                seen[http_get(f"http://{cluster.node_ip(1)}:{port}/").split()[1]] += 1
            except (OSError, urllib.error.URLError, IndexError) as exc:
                failures.append(repr(exc))
            time.sleep(0.02)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        cluster.kubectl("set", "image", "deployment/roll",
                        f"web={cluster.registry.ref(repo, '2')}")
        cluster.kubectl("rollout", "status", "deployment/roll", "--timeout=120s")
        wait_for(lambda: cluster.ready("app=roll", 2), "the rollout's old pods gone",
                 timeout=60)
        time.sleep(1)
    finally:
        stop.set()
        caller.join(timeout=10)
    assert failures == [], failures[:5]
    assert seen["v1"] > 0 and seen["v2"] > 0, seen
    restarts = [s["restartCount"] for p in cluster.pods("app=roll")
                for s in p["status"]["containerStatuses"]]
    assert set(restarts) == {0}  # the exec liveness probe passes


def test_kill_9_of_containerd_and_agent_loses_nothing(cluster: Cluster) -> None:
    before = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"]
              for p in cluster.pods("app=web")}
    procs = live_processes(cluster.paths)
    for unit in ("containerd-node-1", "node-1"):
        os.kill(procs[unit], signal.SIGKILL)

    def restarted() -> bool:
        now = live_processes(cluster.paths)
        return all(now.get(u) not in (None, procs[u]) for u in ("containerd-node-1", "node-1"))

    wait_for(restarted, "the supervisor restarting containerd and the agent", timeout=60)
    time.sleep(3)  # the restarted agent adopts its pods and posts their status again
    wait_for(lambda: cluster.ready("app=web", 3), "the web pods Ready", timeout=60)
    after = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"]
             for p in cluster.pods("app=web")}
    assert after == before  # the same containers: none lost, none restarted
    port = cluster.node_port("web")
    answers = {http_get(f"http://{cluster.node_ip(1)}:{port}/").split()[0] for _ in range(30)}
    assert answers <= set(before)
    # No address leaked: node-1's IPAM holds the addresses of its live pods (sandboxes and
    # process pods), and nothing but pods' addresses (a pod still terminating may be gone).
    ipam = set(json.loads((cluster.paths.node("node-1") / "ipam.json").read_text())
               ["allocations"])
    pods = [p for p in cluster.get("pods", "-A")["items"]
            if p["spec"].get("nodeName") == "node-1" and p["status"].get("podIP")
            and not p["spec"].get("hostNetwork")]
    live = {p["status"]["podIP"] for p in pods if not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") in ("Running", "Pending")}
    assert live <= ipam <= {p["status"]["podIP"] for p in pods}, (live, ipam)
