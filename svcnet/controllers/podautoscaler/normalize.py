"""From the metrics' count to the count the HPA sets: stabilization and rate limits, pure.

Theory of operation, after kube-controller-manager's pkg/controller/podautoscaler/horizontal.go
(``normalizeDesiredReplicas``, ``normalizeDesiredReplicasWithBehaviors``,
``stabilizeRecommendation*``, ``convertDesiredReplicasWithRules``,
``convertDesiredReplicasWithBehaviorRate``, ``calculateScale{Up,Down}Limit*``,
``storeScaleEvent``):

* **without ``spec.behavior``**: the recommendation is the highest of this one and those of
  the downscale stabilization window (5 minutes: a scale-down waits until every recent
  recommendation agrees), then bounded by ``minReplicas`` and by ``maxReplicas`` or twice the
  current count (at least 4), whichever is lower;
* **with ``spec.behavior``**: the recommendation is kept between the lowest recommendation of
  the scale-up window and the highest of the scale-down window (a scale-down window not set
  is the controller's 5 minutes), then each direction's policies limit how far it may move
  from the count at the start of each policy's period (the current count minus what was added
  and plus what was removed within that period): ``Pods`` adds or removes that many,
  ``Percent`` that share (rounded up when growing, down when shrinking); ``selectPolicy``
  ``Max`` takes the policy allowing the most change, ``Min`` the least, ``Disabled`` none;
* each step says why in the ``AbleToScale`` and ``ScalingLimited`` conditions, with upstream's
  reasons and messages (:class:`Limited`).

:class:`Recommender` keeps, per HPA, the recent recommendations and scale events these need
(in memory, as upstream: a new leader starts with none). Times come from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from svcnet.api.access import int_of, list_of, map_of, str_of

__all__ = ["DOWNSCALE_STABILIZATION", "Limited", "Recommender", "Rules", "convert_with_rules",
           "rules_of"]

ObjMap = Mapping[str, Any]

#: --horizontal-pod-autoscaler-downscale-stabilization
DOWNSCALE_STABILIZATION: Final = timedelta(minutes=5)
SCALE_UP_LIMIT_FACTOR: Final = 2.0
SCALE_UP_LIMIT_MINIMUM: Final = 4.0
_INT32_MAX: Final = 2**31 - 1
_INT32_MIN: Final = -(2**31)

_READY = ("ReadyForNewScale", "recommended size matches current size")
_UP_STABILIZED = ("ScaleUpStabilized", "recent recommendations were lower than current one, "
                  "applying the lowest recent recommendation")
_DOWN_STABILIZED = ("ScaleDownStabilized", "recent recommendations were higher than current "
                    "one, applying the highest recent recommendation")
_WITHIN = ("DesiredWithinRange", "the desired count is within the acceptable range")
_UP_LIMIT = ("ScaleUpLimit",
             "the desired replica count is increasing faster than the maximum scale rate")
_DOWN_LIMIT = ("ScaleDownLimit",
               "the desired replica count is decreasing faster than the maximum scale rate")
_TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica "
             "count")
_TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")


@dataclass(frozen=True, slots=True)
class Limited:
    """A normalized count, and the reasons for the two conditions it sets."""

    replicas: int
    able: tuple[str, str]
    """AbleToScale True: (reason, message)."""
    limited: bool
    """ScalingLimited's status."""
    limit: tuple[str, str]
    """ScalingLimited: (reason, message)."""


@dataclass(frozen=True, slots=True)
class Policy:
    type: str
    value: int
    period_seconds: int


@dataclass(frozen=True, slots=True)
class Rules:
    """HPAScalingRules with upstream's defaults filled in."""

    stabilization_seconds: int
    select_policy: str
    policies: tuple[Policy, ...]


_DEFAULT_UP: Final = Rules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
_DEFAULT_DOWN_POLICIES: Final = (Policy("Percent", 100, 15),)


def rules_of(behavior: ObjMap, direction: str, default_down: timedelta) -> Rules:
    """``behavior.scaleUp`` / ``scaleDown`` as :class:`Rules` (GenerateHPAScale*Rules'
    defaults for what is unset; a scale-down window unset is the controller's)."""
    raw = map_of(behavior, direction)
    up = direction == "scaleUp"
    window = raw.get("stabilizationWindowSeconds")
    policies = tuple(Policy(str_of(p, "type"), int_of(p, "value"), int_of(p, "periodSeconds"))
                     for p in list_of(raw, "policies") if isinstance(p, Mapping))
    return Rules(
        int(window) if isinstance(window, int) else (
            _DEFAULT_UP.stabilization_seconds if up else int(default_down.total_seconds())),
        str_of(raw, "selectPolicy") or "Max",
        policies or (_DEFAULT_UP.policies if up else _DEFAULT_DOWN_POLICIES))


def convert_with_rules(current: int, desired: int, minimum: int,
                       maximum: int) -> tuple[int, tuple[str, str]]:
    """convertDesiredReplicasWithRules: bounded by min, and by max or the scale-up limit."""
    scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    allowed, why = (scale_up_limit, _UP_LIMIT) if maximum > scale_up_limit else (maximum,
                                                                                 _TOO_MANY)
    if desired < minimum:
        return minimum, _TOO_FEW
    if desired > allowed:
        return allowed, why
    return desired, _WITHIN


@dataclass(slots=True)
class _ScaleEvent:
    change: int
    at: datetime
    outdated: bool = False


def _changed_within(seconds: int, events: list[_ScaleEvent], now: datetime) -> int:
    """getReplicasChangePerPeriod."""
    cutoff = now - timedelta(seconds=seconds)
    return sum(e.change for e in events if e.at > cutoff)


def _scale_up_limit(current: int, ups: list[_ScaleEvent], downs: list[_ScaleEvent],
                    rules: Rules, now: datetime) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick_min = rules.select_policy == "Min"
    result = _INT32_MAX if pick_min else _INT32_MIN
    for p in rules.policies:
        start = (current - _changed_within(p.period_seconds, ups, now)
                 + _changed_within(p.period_seconds, downs, now))
        proposed = (start + p.value if p.type == "Pods"
                    else math.ceil(start * (1 + p.value / 100)))
        result = min(result, proposed) if pick_min else max(result, proposed)
    return result


def _scale_down_limit(current: int, ups: list[_ScaleEvent], downs: list[_ScaleEvent],
                      rules: Rules, now: datetime) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick_min = rules.select_policy == "Min"  # the least change: the highest count
    result = _INT32_MIN if pick_min else _INT32_MAX
    for p in rules.policies:
        start = (current - _changed_within(p.period_seconds, ups, now)
                 + _changed_within(p.period_seconds, downs, now))
        proposed = (start - p.value if p.type == "Pods"
                    else int(start * (1 - p.value / 100)))
        result = max(result, proposed) if pick_min else min(result, proposed)
    return result


@dataclass(slots=True)
class _History:
    recommendations: list[tuple[int, datetime]] = field(default_factory=list)
    ups: list[_ScaleEvent] = field(default_factory=list)
    downs: list[_ScaleEvent] = field(default_factory=list)


class Recommender:
    """Per-HPA recommendations and scale events, and the normalizations that read them."""

    def __init__(self, downscale_stabilization: timedelta = DOWNSCALE_STABILIZATION) -> None:
        self.downscale_stabilization = downscale_stabilization
        self._by_key: dict[str, _History] = {}

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def record_initial(self, key: str, current: int, now: datetime) -> None:
        """recordInitialRecommendation: the current count, the first time a key is seen."""
        if key not in self._by_key:
            self._by_key[key] = _History([(current, now)])

    def _history(self, key: str) -> _History:
        return self._by_key.setdefault(key, _History())

    def _record(self, key: str, desired: int, now: datetime, old: int | None) -> None:
        recs = self._history(key).recommendations
        if old is None:
            recs.append((desired, now))
        else:
            recs[old] = (desired, now)

    def normalize(self, key: str, current: int, desired: int, minimum: int, maximum: int,
                  now: datetime) -> Limited:
        """normalizeDesiredReplicas (no ``spec.behavior``)."""
        cutoff = now - self.downscale_stabilization
        stabilized, old = desired, None
        for i, (rec, at) in enumerate(self._history(key).recommendations):
            if at < cutoff:
                old = i
            elif rec > stabilized:
                stabilized = rec
        self._record(key, desired, now, old)
        able = _DOWN_STABILIZED if stabilized != desired else _READY
        replicas, limit = convert_with_rules(current, stabilized, minimum, maximum)
        return Limited(replicas, able, replicas != stabilized, limit)

    def normalize_with_behavior(self, key: str, behavior: ObjMap, current: int, desired: int,
                                minimum: int, maximum: int, now: datetime) -> Limited:
        """normalizeDesiredReplicasWithBehaviors."""
        up = rules_of(behavior, "scaleUp", self.downscale_stabilization)
        down = rules_of(behavior, "scaleDown", self.downscale_stabilization)
        stabilized, why = self._stabilize_with_behavior(key, up, down, current, desired, now)
        able = why if stabilized != desired else _READY
        replicas, limit = self._rate_limited(key, up, down, current, stabilized, minimum,
                                             maximum, now)
        return Limited(replicas, able, replicas != stabilized, limit)

    def _stabilize_with_behavior(self, key: str, up: Rules, down: Rules, current: int,
                                 desired: int, now: datetime) -> tuple[int, tuple[str, str]]:
        up_cutoff = now - timedelta(seconds=up.stabilization_seconds)
        down_cutoff = now - timedelta(seconds=down.stabilization_seconds)
        up_rec = down_rec = desired
        old = None
        for i, (rec, at) in enumerate(self._history(key).recommendations):
            if at > up_cutoff:
                up_rec = min(rec, up_rec)
            if at > down_cutoff:
                down_rec = max(rec, down_rec)
            if at < up_cutoff and at < down_cutoff:
                old = i
        recommendation = min(max(current, up_rec), down_rec)
        self._record(key, desired, now, old)
        return recommendation, (_UP_STABILIZED if desired >= current else _DOWN_STABILIZED)

    def _rate_limited(self, key: str, up: Rules, down: Rules, current: int, desired: int,
                      minimum: int, maximum: int, now: datetime) -> tuple[int, tuple[str, str]]:
        """convertDesiredReplicasWithBehaviorRate."""
        history = self._history(key)
        if desired > current:
            limit = max(_scale_up_limit(current, history.ups, history.downs, up, now), current)
            allowed, why = (limit, _UP_LIMIT) if maximum > limit else (maximum, _TOO_MANY)
            if desired > allowed:
                return allowed, why
        elif desired < current:
            limit = min(_scale_down_limit(current, history.ups, history.downs, down, now),
                        current)
            allowed, why = (limit, _DOWN_LIMIT) if minimum < limit else (minimum, _TOO_FEW)
            if desired < allowed:
                return allowed, why
        return desired, _WITHIN

    def store_scale_event(self, key: str, behavior: ObjMap | None, previous: int, new: int,
                          now: datetime) -> None:
        """storeScaleEvent: kept only for HPAs with ``spec.behavior``; an event older than
        the direction's longest policy period is replaced rather than kept."""
        if behavior is None:
            return
        history = self._history(key)
        growing = new > previous
        rules = rules_of(behavior, "scaleUp" if growing else "scaleDown",
                         self.downscale_stabilization)
        events = history.ups if growing else history.downs
        longest = max((p.period_seconds for p in rules.policies), default=0)
        cutoff = now - timedelta(seconds=longest)
        old = None
        for i, event in enumerate(events):
            if event.at < cutoff:
                event.outdated = True
            if event.outdated:
                old = i
        event = _ScaleEvent(abs(new - previous), now)
        if old is None:
            events.append(event)
        else:
            events[old] = event
