"""Where a node keeps container logs, and how a Node says so: shared by the node agent (which
writes them), the API server (which serves ``pods/log``) and the CLI (``svcnet exec``).

A local cluster runs every node on one machine, so the API server reads a pod's log file
straight from the node's state directory, which the agent publishes in an annotation, instead
of proxying to the node as kube-apiserver proxies to the kubelet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

LABEL_CLUSTER: Final = "svcnet.io/cluster"
LABEL_NODE_INDEX: Final = "svcnet.io/node-index"
ANNOTATION_STATE_DIR: Final = "svcnet.io/state-dir"


def container_log_dir(state_dir: Path, pod_uid: str, container: str) -> Path:
    return state_dir / "pods" / pod_uid / container


def log_files(state_dir: Path, pod_uid: str, container: str) -> list[Path]:
    """The container's log files, oldest attempt first (``<attempt>.log``)."""
    d = container_log_dir(state_dir, pod_uid, container)
    if not d.is_dir():
        return []
    return sorted((p for p in d.glob("*.log") if p.stem.isdigit()), key=lambda p: int(p.stem))
