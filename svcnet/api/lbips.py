"""LoadBalancer addresses as the API states them: MetalLB's annotations, what a Service asks
for, what it was given, and why an assignment fails. Pure; shared by the registry's address
manager (svcnet/registry/lb_ipam.py) and the controller that drives it
(svcnet/controllers/lb_ipam.py)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

ANNOTATION_IPS = "metallb.io/loadBalancerIPs"
ANNOTATION_POOL = "metallb.io/address-pool"


class AssignmentError(Exception):
    """Why a Service cannot get its addresses now; ``reason`` becomes the Event reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def wants_load_balancer_ips(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def requested_ips(svc: Obj) -> list[str]:
    meta = svc.get("metadata") or {}
    annotation = (meta.get("annotations") or {}).get(ANNOTATION_IPS, "")
    if annotation.strip():
        return [ip.strip() for ip in annotation.split(",") if ip.strip()]
    legacy = (svc.get("spec") or {}).get("loadBalancerIP", "")
    return [legacy.strip()] if legacy and legacy.strip() else []


def ingress_ips(svc: Obj) -> list[str]:
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return [i["ip"] for i in lb.get("ingress") or [] if i.get("ip")]
