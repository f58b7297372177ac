"""Status conditions: setting one in a ``status.conditions`` list.

Theory of operation
-------------------
After k8s.io/apimachinery's ``pkg/api/meta/conditions.go`` (``SetStatusCondition``), which
the newer controllers use for ``metav1.Condition`` lists, and which kube-controller-manager's
horizontal pod autoscaler repeats for its own condition type (``setConditionInList`` in
``pkg/controller/podautoscaler/horizontal.go``): a condition of a new type is appended; one of
an existing type takes the new status, reason, message (and observedGeneration, where the
condition carries one), and its ``lastTransitionTime`` moves only when its status changes.

The older controllers keep their own rules, as upstream's do (Deployments keep the transition
time when only the reason changes, Jobs replace the whole condition): those live with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from svcnet.api.access import list_of
from svcnet.util.clock import rfc3339

__all__ = ["set_status_condition"]

Obj = dict[str, Any]


def set_status_condition(status: Obj, condition: Obj, now: datetime) -> None:
    """Set ``condition`` (a dict with at least ``type`` and ``status``) in
    ``status["conditions"]``; mutates ``status``."""
    conditions = [c for c in list_of(status, "conditions") if isinstance(c, dict)]
    for c in conditions:
        if c.get("type") == condition["type"]:
            if c.get("status") != condition["status"] or not c.get("lastTransitionTime"):
                c["lastTransitionTime"] = rfc3339(now)
            c.update(condition)
            break
    else:
        conditions.append({**condition, "lastTransitionTime": rfc3339(now)})
    status["conditions"] = conditions
