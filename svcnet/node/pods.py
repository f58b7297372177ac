"""What a node should do with its pods, and what their status says: pure functions only.

Theory of operation
-------------------
The node agent compares the pods bound to it (Pod JSON from the API) with what actually runs
(:class:`NodeState`: per pod its network and the runtime's :class:`ContainerProcess` records
plus probe verdicts) and asks :func:`plan_pods` for a :class:`PodPlan`. The plan is data, and
applying it (:mod:`svcnet.node.runner`) does nothing but carry it out; running the planner
again on the result plans nothing new, so the agent is level-triggered like any controller.
:func:`pod_status` then computes the pod's ``status`` from the same inputs. Neither reads a
clock: ``now`` is an argument.

Per pod (the kubelet's ``SyncPod`` / ``computePodActions``):

* **deleted** (``deletionTimestamp``): stop every running container with the grace period
  (``metadata.deletionGracePeriodSeconds``, else ``spec.terminationGracePeriodSeconds``, else
  30 s); once none runs, tear the network down and report the pod finished, for the agent to
  delete the API object.
* **terminal** (phase Succeeded/Failed, computed or already reported): nothing runs any more;
  the network is torn down (the kubelet kills a finished pod's sandbox, freeing its IP) while
  the status keeps the last ``podIP``.
* otherwise: set the network up if missing; run ``initContainers`` one at a time, each to a
  zero exit, before any app container; start app containers that never ran; kill a container
  whose liveness or startup probe failed; restart exited containers as ``restartPolicy``
  says (``Always``; ``OnFailure`` for non-zero or unknown exits; ``Never``). Init containers
  restart on failure unless the policy is ``Never``, which fails the pod.
* pods the agent runs that are no longer bound to it at all (force-deleted): **forget**
  them, i.e. stop, tear down, drop records.

**Crash-loop back-off** is the kubelet's ``flowcontrol.Backoff`` keyed by container: the first
restart is immediate, then the container waits 10 s, 20 s, 40 s, ... at most 5 minutes after
each exit before it is started again (``CrashLoopBackOff``); an entry untouched for 10
minutes (twice the cap) is forgotten, so a container that crashes rarely restarts at once.
The back-off map is an input and an output of the plan; it lives in the agent's memory, so an
agent restart resets it, as a kubelet restart does.

**Status** mirrors ``generateAPIPodStatus``: ``phase`` by ``getPhase`` (a terminal phase is
never left again), ``containerStatuses``/``initContainerStatuses`` (``state``, ``lastState``,
``ready``, ``started``, ``restartCount`` = the attempt number), and the conditions in the
kubelet's order: PodReadyToStartContainers, Initialized, Ready, ContainersReady,
PodScheduled, with ``lastTransitionTime`` carried over from the previous status while a
condition's status does not change. An exit whose code nobody could read (a container that
ended while adopted after an agent restart) is shown the way the kubelet shows a container it
lost: ``ContainerStatusUnknown``, exit code 137.

Also here, because they are pure: the container's argv and environment
(:func:`container_process_spec`, over :mod:`.podenv`) and log paths. The pod's
``resolv.conf`` is formed in :mod:`.dnsconfig`.

Not supported (documented refusals, not silent ones): native sidecars (init containers with
``restartPolicy: Always``) run as ordinary init containers.

Why this module is long: The pod lifecycle as one pure planner (kubelet's computePodActions) and
its applier; splitting them would hide the state machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from ipaddress import IPv4Interface, IPv6Network
from pathlib import Path
from typing import Any, Final

from svcnet.api.access import mapping_of
from svcnet.api.goduration import go_duration
from svcnet.node.etchosts import pod_hostname
from svcnet.node.ipam import api_pod_ips
from svcnet.node.podenv import ConfigError, EnvResult, Lookup, container_env, expand_vars
from svcnet.node.probes import ContainerProbeStatus
from svcnet.node.runtime import (
    REASON_START_ERROR,
    ContainerKey,
    ContainerProcess,
    Exited,
    ProcessSpec,
    Running,
)
from svcnet.util.clock import rfc3339
from svcnet.util.ipfamily import DUAL, IPFamilies

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "DEFAULT_PATH",
    "ActualPod",
    "BackoffEntry",
    "ConfigError",
    "NodeState",
    "PodPlan",
    "StartContainer",
    "StopContainer",
    "Waiting",
    "container_id",
    "container_process_spec",
    "expand_vars",
    "format_pod",
    "grace_period",
    "is_host_network",
    "is_terminal_phase",
    "log_path",
    "plan_pods",
    "pod_status",
]

BACKOFF_INITIAL: Final = 10.0
BACKOFF_MAX: Final = 300.0
DEFAULT_GRACE: Final = 30.0
ORPHAN_GRACE: Final = 2.0
"""Grace for pods that vanished from the API (force-deleted): the kubelet's minimum."""
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNKNOWN_EXIT_CODE: Final = 137

Pod = Mapping[str, Any]


# --- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActualPod:
    """What runs for one pod. ``network`` is its address, None while it has no network."""

    uid: str
    network: IPv4Interface | None = None
    containers: Mapping[str, ContainerProcess] = field(default_factory=dict)
    probes: Mapping[str, ContainerProbeStatus] = field(default_factory=dict)
    """Probe verdicts of running containers; a running container without an entry counts as
    started and ready (no probes)."""


@dataclass(frozen=True, slots=True)
class BackoffEntry:
    delay: float
    last_update: datetime


@dataclass(frozen=True, slots=True)
class NodeState:
    pods: Mapping[str, ActualPod] = field(default_factory=dict)
    backoff: Mapping[ContainerKey, BackoffEntry] = field(default_factory=dict)


# --- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartContainer:
    pod_uid: str
    container: str
    attempt: int
    init: bool = False

    @property
    def key(self) -> ContainerKey:
        return ContainerKey(self.pod_uid, self.container)


@dataclass(frozen=True, slots=True)
class StopContainer:
    pod_uid: str
    container: str
    grace: float
    message: str
    """Why, as the kubelet's ``Killing`` event says it (``Stopping container app``,
    ``Container app failed liveness probe, will be restarted``)."""

    @property
    def key(self) -> ContainerKey:
        return ContainerKey(self.pod_uid, self.container)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A container that must not start yet (crash-loop back-off) and until when."""

    pod_uid: str
    container: str
    until: datetime
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class PodPlan:
    setup_network: tuple[str, ...] = ()
    start: tuple[StartContainer, ...] = ()
    stop: tuple[StopContainer, ...] = ()
    teardown_network: tuple[str, ...] = ()
    finished: tuple[str, ...] = ()
    """Deleted pods with nothing left running: the agent may delete their API objects."""
    forget: tuple[str, ...] = ()
    """Pods no longer bound to this node: stop everything, tear down, drop records."""
    waiting: tuple[Waiting, ...] = ()
    backoff: Mapping[ContainerKey, BackoffEntry] = field(default_factory=dict)

    @property
    def next_wakeup(self) -> datetime | None:
        """When a back-off ends, i.e. when the agent must plan again without any event."""
        return min((w.until for w in self.waiting), default=None)

    @property
    def empty(self) -> bool:
        return not (self.setup_network or self.start or self.stop or self.teardown_network
                    or self.finished or self.forget)


# --- small pod accessors ------------------------------------------------------------------


def _uid(pod: Pod) -> str:
    # Not uid_of: that gives "" for a null uid, where this (and runner.py, which keys pods
    # the same way) gives "None"; the two must agree.
    return str(pod.get("metadata", {}).get("uid", ""))


def _containers(pod: Pod, key: str = "containers") -> list[Mapping[str, Any]]:
    return [c for c in mapping_of(pod, "spec").get(key) or []
            if isinstance(c, Mapping) and c.get("name")]


def format_pod(pod: Pod) -> str:
    """How the kubelet names a pod in messages (``format.Pod``): ``name_namespace(uid)``."""
    meta = mapping_of(pod, "metadata")
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({_uid(pod)})"


def _policy(pod: Pod) -> str:
    return str(mapping_of(pod, "spec").get("restartPolicy") or "Always")


def is_host_network(pod: Pod) -> bool:
    return bool(mapping_of(pod, "spec").get("hostNetwork"))


def is_terminal_phase(phase: str | None) -> bool:
    return phase in ("Succeeded", "Failed")


def grace_period(pod: Pod) -> float:
    """Seconds between SIGTERM and SIGKILL when the pod's containers are stopped."""
    meta = pod.get("metadata", {})
    for value in (meta.get("deletionGracePeriodSeconds"),
                  mapping_of(pod, "spec").get("terminationGracePeriodSeconds")):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return DEFAULT_GRACE


def _probe_grace(pod: Pod, container: Mapping[str, Any], probe_key: str) -> float:
    """A probe's own terminationGracePeriodSeconds overrides the pod's (liveness/startup)."""
    probe = container.get(probe_key)
    if isinstance(probe, Mapping):
        value = probe.get("terminationGracePeriodSeconds")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return float(value)
    spec_grace = mapping_of(pod, "spec").get("terminationGracePeriodSeconds")
    if isinstance(spec_grace, int) and not isinstance(spec_grace, bool) and spec_grace >= 0:
        return float(spec_grace)
    return DEFAULT_GRACE


def _should_restart(policy: str, state: Exited) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return state.exit_code != 0
    return False


# --- back-off (the kubelet's flowcontrol.Backoff, made pure) ----------------------------------


def _expired(event: datetime, last_update: datetime) -> bool:
    return (event - last_update).total_seconds() > 2 * BACKOFF_MAX


def _in_backoff(entry: BackoffEntry | None, since: datetime, now: datetime) -> bool:
    if entry is None or _expired(now, entry.last_update):
        return False
    return (now - since).total_seconds() < entry.delay


def _next_backoff(entry: BackoffEntry | None, event: datetime) -> BackoffEntry:
    if entry is None or _expired(event, entry.last_update):
        return BackoffEntry(BACKOFF_INITIAL, event)
    return BackoffEntry(min(entry.delay * 2, BACKOFF_MAX), event)


# --- the planner ----------------------------------------------------------------------------


@dataclass
class _PlanBuilder:
    now: datetime
    backoff: dict[ContainerKey, BackoffEntry]
    setup_network: list[str] = field(default_factory=list)
    start: list[StartContainer] = field(default_factory=list)
    stop: list[StopContainer] = field(default_factory=list)
    teardown_network: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)

    def restart_or_wait(self, pod: Pod, name: str, proc: ContainerProcess, init: bool) -> None:
        assert isinstance(proc.state, Exited)
        key = ContainerKey(proc.key.pod_uid, name)
        entry = self.backoff.get(key)
        if _in_backoff(entry, proc.state.finished_at, self.now):
            assert entry is not None
            until = proc.state.finished_at + timedelta(seconds=entry.delay)
            delay = go_duration(int(entry.delay) * 1_000_000_000)
            self.waiting.append(Waiting(
                key.pod_uid, name, until, "CrashLoopBackOff",
                f"back-off {delay} restarting failed container={name} pod={format_pod(pod)}"))
            return
        self.backoff[key] = _next_backoff(entry, proc.state.finished_at)
        self.start.append(StartContainer(key.pod_uid, name, proc.attempt + 1, init))


def plan_pods(desired: Sequence[Pod], actual: NodeState, now: datetime) -> PodPlan:
    """What to do now; see the module docstring for the rules."""
    b = _PlanBuilder(now, dict(actual.backoff))
    desired_uids = set()
    for pod in desired:
        uid = _uid(pod)
        if not uid:
            continue
        desired_uids.add(uid)
        _plan_pod(pod, actual.pods.get(uid), b)
    for uid in sorted(set(actual.pods) - desired_uids):
        b.forget.append(uid)
    # Back-off entries of containers that are gone would only leak.
    live_keys = {ContainerKey(uid, name) for uid, ap in actual.pods.items()
                 if uid in desired_uids for name in ap.containers}
    backoff = {k: v for k, v in b.backoff.items()
               if k in live_keys and not _expired(now, v.last_update)}
    return PodPlan(tuple(b.setup_network), tuple(b.start), tuple(b.stop),
                   tuple(b.teardown_network), tuple(b.finished), tuple(b.forget),
                   tuple(b.waiting), backoff)


def _plan_pod(pod: Pod, ap: ActualPod | None, b: _PlanBuilder) -> None:  # noqa: C901
    uid = _uid(pod)
    procs: Mapping[str, ContainerProcess] = ap.containers if ap is not None else {}
    has_network = ap is not None and ap.network is not None
    running = [name for name, p in sorted(procs.items()) if p.running]

    if pod.get("metadata", {}).get("deletionTimestamp"):
        grace = grace_period(pod)
        b.stop.extend(StopContainer(uid, name, grace, f"Stopping container {name}")
                      for name in running)
        if not running:
            if has_network and not is_host_network(pod):
                b.teardown_network.append(uid)
            b.finished.append(uid)
        return

    phase = _phase(pod, ap)
    if is_terminal_phase(phase) or is_terminal_phase(pod.get("status", {}).get("phase")):
        b.stop.extend(StopContainer(uid, name, grace_period(pod), f"Stopping container {name}")
                      for name in running)
        if not running and has_network and not is_host_network(pod):
            b.teardown_network.append(uid)
        return

    if not has_network and not is_host_network(pod):
        b.setup_network.append(uid)

    policy = _policy(pod)
    for c in _containers(pod, "initContainers"):
        proc = procs.get(c["name"])
        if proc is None:
            b.start.append(StartContainer(uid, c["name"], 0, init=True))
            return
        if proc.running:
            return
        assert isinstance(proc.state, Exited)
        if proc.state.exit_code == 0:
            continue
        if policy != "Never":
            b.restart_or_wait(pod, c["name"], proc, init=True)
        return

    statuses = ap.probes if ap is not None else {}
    for c in _containers(pod):
        name = c["name"]
        proc = procs.get(name)
        if proc is None:
            b.start.append(StartContainer(uid, name, 0))
        elif proc.running:
            probe = statuses.get(name)
            # The kubelet's words (computePodActions); it restarts unless the policy is Never.
            then = ", will be restarted" if policy != "Never" else ""
            if probe is not None and probe.startup_failed:
                b.stop.append(StopContainer(uid, name, _probe_grace(pod, c, "startupProbe"),
                                            f"Container {name} failed startup probe{then}"))
            elif probe is not None and probe.liveness_failed:
                b.stop.append(StopContainer(uid, name, _probe_grace(pod, c, "livenessProbe"),
                                            f"Container {name} failed liveness probe{then}"))
        else:
            assert isinstance(proc.state, Exited)
            if _should_restart(policy, proc.state):
                b.restart_or_wait(pod, name, proc, init=False)


# --- status -------------------------------------------------------------------------------


def container_id(pod_uid: str, container: str, attempt: int) -> str:
    """A stable id per container run, in the ``<runtime>://<64 hex>`` form of CRI ids."""
    digest = hashlib.sha256(f"{pod_uid}/{container}/{attempt}".encode()).hexdigest()
    return f"svcnet://{digest}"


def _terminated(proc: ContainerProcess, state: Exited, attempt: int) -> dict[str, Any]:
    code = state.exit_code
    reason, message = state.reason, state.message
    if code is None:
        code, reason = UNKNOWN_EXIT_CODE, "ContainerStatusUnknown"
    out: dict[str, Any] = {"exitCode": code}
    if state.signal:
        out["signal"] = state.signal
    out["reason"] = reason
    if message:
        out["message"] = message
    out["startedAt"] = rfc3339(state.started_at) if state.started_at else None
    out["finishedAt"] = rfc3339(state.finished_at)
    out["containerID"] = proc.ids.get(attempt) or container_id(proc.key.pod_uid,
                                                                proc.key.container, attempt)
    return out


def _container_status(pod: Pod, c: Mapping[str, Any], proc: ContainerProcess | None,
                      probe: ContainerProbeStatus | None, waiting: tuple[str, str] | None,
                      default_waiting: str) -> dict[str, Any]:
    name = c["name"]
    out: dict[str, Any] = {"name": name}
    ready = started = False
    if proc is None:
        reason, message = waiting or (default_waiting, "")
        out["state"] = {"waiting": {"reason": reason, **({"message": message} if message
                                                            else {})}}
        out["lastState"] = {}
    elif isinstance(proc.state, Running):
        out["state"] = {"running": {"startedAt": rfc3339(proc.state.started_at)}}
        out["lastState"] = ({"terminated": _terminated(proc, proc.previous, proc.attempt - 1)}
                            if proc.previous is not None else {})
        verdict = probe or ContainerProbeStatus(ready=True, started=True)
        ready, started = verdict.ready, verdict.started
    else:
        terminated = _terminated(proc, proc.state, proc.attempt)
        if waiting is not None:
            out["state"] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
            out["lastState"] = {"terminated": terminated}
        else:
            out["state"] = {"terminated": terminated}
            out["lastState"] = ({"terminated": _terminated(proc, proc.previous,
                                                           proc.attempt - 1)}
                                if proc.previous is not None else {})
    out["ready"] = ready
    out["restartCount"] = proc.attempt if proc is not None else 0
    out["image"] = str(c.get("image", ""))
    out["imageID"] = proc.image_id if proc is not None else ""
    if proc is not None:
        out["containerID"] = proc.ids.get(proc.attempt) or container_id(proc.key.pod_uid, name,
                                                                        proc.attempt)
    out["started"] = started
    return out


def _bucket(status: Mapping[str, Any]) -> str:
    state = status.get("state", {})
    if "running" in state:
        return "running"
    if "terminated" in state:
        return "succeeded" if state["terminated"].get("exitCode") == 0 else "stopped"
    if "waiting" in state:
        return "stopped" if "terminated" in status.get("lastState", {}) else "waiting"
    return "unknown"


def _compute_phase(pod: Pod, init_statuses: Sequence[Mapping[str, Any]],
                   statuses: Sequence[Mapping[str, Any]], pod_is_terminal: bool) -> str:
    """The kubelet's getPhase over computed container statuses."""
    policy = _policy(pod)
    pending_init = failed_init = 0
    for s in init_statuses:
        state, last = s.get("state", {}), s.get("lastState", {})
        if "terminated" in state:
            failed_init += state["terminated"].get("exitCode") != 0
        elif "waiting" in state and "terminated" in last:
            failed_init += last["terminated"].get("exitCode") != 0
        else:
            pending_init += 1
    counts = {"running": 0, "stopped": 0, "succeeded": 0, "waiting": 0, "unknown": 0}
    for s in statuses:
        bucket = _bucket(s)
        counts[bucket] += 1
        if bucket == "succeeded":
            counts["stopped"] += 1
    running, stopped, succeeded = counts["running"], counts["stopped"], counts["succeeded"]
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0:
        return "Pending"
    if counts["waiting"] > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0 and counts["unknown"] == 0:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _phase(pod: Pod, ap: ActualPod | None) -> str:
    """The phase the status would show now (for the planner's "is it over?" question)."""
    procs = ap.containers if ap is not None else {}
    init = [_container_status(pod, c, procs.get(c["name"]), None, None, "")
            for c in _containers(pod, "initContainers")]
    app = [_container_status(pod, c, procs.get(c["name"]), None, None, "")
           for c in _containers(pod)]
    return _compute_phase(pod, init, app, pod_is_terminal=False)


def _condition(ctype: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": ctype, "status": "True" if ok else "False"}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def _containers_ready(pod: Pod, statuses: Sequence[Mapping[str, Any]],
                      phase: str) -> dict[str, Any]:
    if phase == "Succeeded":
        return _condition("ContainersReady", False, "PodCompleted")
    if phase == "Failed":
        return _condition("ContainersReady", False, "PodFailed")
    unready = [s["name"] for s in statuses if not s.get("ready")]
    if unready:
        return _condition("ContainersReady", False, "ContainersNotReady",
                          f"containers with unready status: {_go_list(unready)}")
    return _condition("ContainersReady", True)


def _initialized(pod: Pod, init_statuses: Sequence[Mapping[str, Any]],
                 statuses: Sequence[Mapping[str, Any]], phase: str) -> dict[str, Any]:
    if not init_statuses:
        return _condition("Initialized", True)
    if phase == "Succeeded":
        return _condition("Initialized", True, "PodCompleted")
    if any("running" in s["state"] or "terminated" in s.get("lastState", {})
           or "terminated" in s["state"] for s in statuses):
        return _condition("Initialized", True)
    incomplete = [s["name"] for s in init_statuses
                  if s["state"].get("terminated", {}).get("exitCode", -1) != 0]
    if incomplete:
        return _condition("Initialized", False, "ContainersNotInitialized",
                          f"containers with incomplete status: {_go_list(incomplete)}")
    return _condition("Initialized", True)


def _ready(pod: Pod, containers_ready: Mapping[str, Any],
           old_conditions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    if containers_ready["status"] != "True":
        return _condition("Ready", False, containers_ready.get("reason", ""),
                          containers_ready.get("message", ""))
    problems = []
    for gate in mapping_of(pod, "spec").get("readinessGates") or []:
        ctype = gate.get("conditionType", "") if isinstance(gate, Mapping) else ""
        cond = old_conditions.get(ctype)
        if cond is None:
            problems.append(f'corresponding condition of pod readiness gate "{ctype}" does '
                            f"not exist.")
        elif cond.get("status") != "True":
            problems.append(f'the status of pod readiness gate "{ctype}" is not "True", but '
                            f"{cond.get('status')}")
    if problems:
        return _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(problems))
    return _condition("Ready", True)


def _pod_conditions(pod: Pod, old: Mapping[str, Any], init_statuses: list[dict[str, Any]],
                    statuses: list[dict[str, Any]], phase: str, has_network: bool,
                    now: datetime) -> list[dict[str, Any]]:
    """The kubelet's conditions, their transition times kept while their status is, and the
    conditions it does not own carried over."""
    old_conditions = {c.get("type", ""): c for c in old.get("conditions") or []
                      if isinstance(c, Mapping)}
    containers_ready = _containers_ready(pod, statuses, phase)
    conditions = [
        _condition("PodReadyToStartContainers", has_network and not is_terminal_phase(phase)),
        _initialized(pod, init_statuses, statuses, phase),
        _ready(pod, containers_ready, old_conditions),
        containers_ready,
        _condition("PodScheduled", True),
    ]
    for cond in conditions:
        prev = old_conditions.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"]
        cond["lastProbeTime"] = None
        cond["lastTransitionTime"] = (prev.get("lastTransitionTime") if same and prev
                                      else rfc3339(now))
    # Conditions the kubelet does not own (readiness gates' targets, DisruptionTarget, ...)
    # are someone else's to write; keep them.
    owned = {c["type"] for c in conditions}
    conditions += [dict(c) for t, c in old_conditions.items() if t not in owned]
    return conditions


def _pod_ips(pod: Pod, ap: ActualPod | None, old: Mapping[str, Any], host_ip: str,
             pod_cidr6: IPv6Network | None, families: IPFamilies) -> list[str]:
    """``podIPs``, the primary first: the node's address for host-network pods; the pod's own
    (:func:`~svcnet.node.ipam.api_pod_ips`: on a dual-stack node the IPv6 address that goes
    with the IPv4 one too); else the last ones reported."""
    if is_host_network(pod):
        return [host_ip]
    if ap is not None and ap.network is not None:
        return api_pod_ips(ap.network, pod_cidr6, families)
    previous = [str(i.get("ip")) for i in old.get("podIPs") or [] if i.get("ip")]
    first = old.get("podIP")
    return previous if previous[:1] == [first] else [first] if first else []


def pod_status(pod: Pod, ap: ActualPod | None, *, now: datetime, host_ip: str,
               waiting: Mapping[str, tuple[str, str]] | None = None,
               pod_cidr6: IPv6Network | None = None,
               families: IPFamilies = DUAL) -> dict[str, Any]:
    """The pod's ``status`` as the kubelet would write it.

    ``waiting`` maps container names to a (reason, message) to show instead of the state
    (``CrashLoopBackOff`` from :attr:`PodPlan.waiting`, ``CreateContainerConfigError`` from
    the runner). The previous status (``pod["status"]``) provides ``startTime``, ``qosClass``,
    the conditions' transition times, the last ``podIP`` and a terminal phase, all of which
    are kept.
    """
    waiting = waiting or {}
    old: Mapping[str, Any] = pod.get("status") or {}
    procs = ap.containers if ap is not None else {}
    probes = ap.probes if ap is not None else {}
    has_network = is_host_network(pod) or (ap is not None and ap.network is not None)
    init_specs = _containers(pod, "initContainers")
    init_done = all(
        isinstance((p := procs.get(c["name"])), ContainerProcess)
        and isinstance(p.state, Exited) and p.state.exit_code == 0 for c in init_specs)
    app_default = "ContainerCreating" if init_done else "PodInitializing"
    deleting = bool(pod.get("metadata", {}).get("deletionTimestamp"))
    policy = _policy(pod)

    def waiting_for(name: str, init: bool) -> tuple[str, str] | None:
        if name in waiting:
            return waiting[name]
        # A container its runtime could not start, about to be tried again: the kubelet
        # shows RunContainerError until the next attempt (then CrashLoopBackOff).
        proc = procs.get(name)
        if (proc is None or not isinstance(proc.state, Exited) or deleting
                or proc.state.reason != REASON_START_ERROR):
            return None
        again = policy != "Never" if init else _should_restart(policy, proc.state)
        return ("RunContainerError", proc.state.message) if again else None

    init_statuses = [
        _container_status(pod, c, procs.get(c["name"]), None, waiting_for(c["name"], True),
                          "PodInitializing" if i else "ContainerCreating")
        for i, c in enumerate(init_specs)]
    for s in init_statuses:
        s["started"] = "running" in s["state"]
        s["ready"] = "terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0
    statuses = [_container_status(pod, c, procs.get(c["name"]), probes.get(c["name"]),
                                  waiting_for(c["name"], False), app_default)
                for c in _containers(pod)]

    nothing_runs = not any(p.running for p in procs.values())
    phase = _compute_phase(pod, init_statuses, statuses,
                           pod_is_terminal=deleting and nothing_runs and bool(procs))
    if is_terminal_phase(old.get("phase")):
        phase = str(old["phase"])

    conditions = _pod_conditions(pod, old, init_statuses, statuses, phase, has_network, now)
    pod_ips = _pod_ips(pod, ap, old, host_ip, pod_cidr6, families)
    status: dict[str, Any] = {"conditions": conditions, "containerStatuses": statuses}
    status["hostIP"] = host_ip
    status["hostIPs"] = [{"ip": host_ip}]
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["phase"] = phase
    if pod_ips:
        status["podIP"] = pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in pod_ips]
    if old.get("qosClass"):
        status["qosClass"] = old["qosClass"]
    status["startTime"] = old.get("startTime") or rfc3339(now)
    return status


# --- container process specs ----------------------------------------------------------------


def container_process_spec(pod: Pod, container: Mapping[str, Any], *, netns: str | None,
                           log_file: Path, attempt: int, pod_ip: str, host_ip: str,
                           node_name: str, service_env: Mapping[str, str] | None = None,
                           path: str = DEFAULT_PATH, lookup: Lookup | None = None,
                           allocatable: Mapping[str, str] | None = None,
                           resolved: EnvResult | None = None,
                           mount_plan: Mapping[str, Any] | None = None) -> ProcessSpec:
    """argv and environment for one container run. Raises :class:`ConfigError`.

    There are no images: ``command`` is the whole argv (followed by ``args``); without a
    ``command``, ``args`` is. The environment is what an image would give (``PATH``,
    ``HOME``) plus ``HOSTNAME``, then the kubelet's variables (:mod:`.podenv`: ``envFrom``,
    ``env``, the Service variables), computed here unless ``resolved`` already holds them.
    ``argv`` is ``$(VAR)``-expanded against the latter.
    """
    if resolved is None:
        resolved = container_env(pod, container, lookup or _no_objects, pod_ip=pod_ip,
                                 host_ip=host_ip, node_name=node_name,
                                 service_env=service_env, allocatable=allocatable)
    env: dict[str, str] = {"PATH": path, "HOME": "/root",
                           "HOSTNAME": pod_hostname(pod)}
    env.update(resolved.env)
    command = [str(x) for x in container.get("command") or []]
    args = [str(x) for x in container.get("args") or []]
    argv = tuple(expand_vars(a, resolved.env) for a in command + args)
    working_dir = container.get("workingDir") or None
    return ProcessSpec(argv=argv, env=env, log_path=log_file, netns=netns,
                       working_dir=working_dir, attempt=attempt, mount_plan=mount_plan)


def _no_objects(kind: str, namespace: str, name: str) -> None:
    """The lookup of a caller that has no ConfigMaps or Secrets: none exists."""
    return None


def log_path(state_dir: Path, pod_uid: str, container: str, attempt: int) -> Path:
    """``STATE/pods/<uid>/<container>/<attempt>.log``, the kubelet's layout without the
    namespace_name prefix (``kubectl logs --previous`` reads ``attempt - 1``)."""
    ContainerKey(pod_uid, container)  # validates both as path components
    return state_dir / "pods" / pod_uid / container / f"{attempt}.log"


def log_files(state_dir: Path, pod_uid: str, container: str) -> list[Path]:
    """The container's log files, oldest attempt first (what :func:`log_path` named)."""
    d = log_path(state_dir, pod_uid, container, 0).parent
    if not d.is_dir():
        return []
    return sorted((p for p in d.glob("*.log") if p.stem.isdigit()), key=lambda p: int(p.stem))
