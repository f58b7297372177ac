"""Cron schedules as CronJobs write them: parsing with upstream's error messages, and the
times a schedule fires.

Theory of operation
-------------------
kube-apiserver validates ``spec.schedule`` and kube-controller-manager computes the times a
CronJob fires with ``github.com/robfig/cron/v3``'s ``ParseStandard``: five fields (minute,
hour, day of month, month, day of week), or a descriptor (``@yearly``/``@annually``,
``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``, ``@every <duration>``), with
an optional ``TZ=<zone>``/``CRON_TZ=<zone>`` prefix. This module is that parser, rule for rule
(``parser.go``'s ``getRange``, ``mustParseInt``, ``normalizeFields`` and their messages, which
the validation error shows verbatim), and ``SpecSchedule.Next`` (``spec.go``): the next time
after ``t`` whose minute, hour, day and month match, found by moving to the start of the next
matching month, day, hour and minute in turn and giving up after five years.

Two details of robfig's semantics are kept:

* a field written ``*`` or ``?`` (or ``*/1``) carries the "star" flag; when the day of month or
  the day of week has it the two must both match, otherwise *either* may (Vixie cron's rule);
* days of the week are 0 (Sunday) to 6; ``7`` is out of range, as upstream.

Times are computed on the wall clock of the schedule's zone (``zoneinfo``), so ``0 9 * * *``
with ``timeZone: Europe/Paris`` fires at 09:00 Paris time on both sides of a DST change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from svcnet.api.goduration import parse_go_duration

__all__ = ["Schedule", "ScheduleError", "load_zone", "parse_schedule"]

_MONTHS: Final = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS: Final = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True, slots=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int]


_MINUTE: Final = _Bounds(0, 59, {})
_HOUR: Final = _Bounds(0, 23, {})
_DOM: Final = _Bounds(1, 31, {})
_MONTH: Final = _Bounds(1, 12, _MONTHS)
_DOW: Final = _Bounds(0, 6, _DAYS)

_DESCRIPTORS: Final = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY: Final = "@every "
_SEARCH_YEARS: Final = 5


class ScheduleError(ValueError):
    """A schedule that does not parse; the message is robfig/cron's."""


@dataclass(frozen=True, slots=True)
class _Field:
    values: frozenset[int]
    star: bool


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: the five fields, or a constant delay (``@every``)."""

    minute: _Field | None = None
    hour: _Field | None = None
    dom: _Field | None = None
    month: _Field | None = None
    dow: _Field | None = None
    every: timedelta | None = None
    #: The zone of a ``TZ=``/``CRON_TZ=`` prefix, if any.
    zone: tzinfo | None = None

    def next_after(self, t: datetime, zone: tzinfo = UTC) -> datetime | None:
        """The first activation strictly after ``t`` on ``zone``'s clock (the prefix's zone
        wins), or None when there is none within five years. ``t`` must be aware."""
        if self.every is not None:
            step = max(self.every, timedelta(seconds=1))
            return t.replace(microsecond=0) + step
        zone = self.zone or zone
        local = t.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        local += timedelta(minutes=1)
        limit = local.year + _SEARCH_YEARS
        while local.year <= limit:
            if not self._matches(self.month, local.month):
                local = _first_of_next_month(local)
                continue
            if not self._day_matches(local):
                local = local.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if not self._matches(self.hour, local.hour):
                local = local.replace(minute=0) + timedelta(hours=1)
                continue
            if not self._matches(self.minute, local.minute):
                local += timedelta(minutes=1)
                continue
            return local.replace(tzinfo=zone).astimezone(UTC)
        return None

    @staticmethod
    def _matches(f: _Field | None, value: int) -> bool:
        return f is None or value in f.values

    def _day_matches(self, local: datetime) -> bool:
        dom = self._matches(self.dom, local.day)
        dow = self._matches(self.dow, (local.weekday() + 1) % 7)
        if (self.dom is not None and self.dom.star) or (self.dow is not None and self.dow.star):
            return dom and dow
        return dom or dow


def _first_of_next_month(local: datetime) -> datetime:
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return local.replace(year=year, month=month, day=1, hour=0, minute=0)


def load_zone(name: str) -> ZoneInfo:
    """time.LoadLocation: a zone by IANA name (``UTC`` included); ScheduleError otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name}") from None


def _atoi(text: str) -> int:
    """mustParseInt (Go's strconv.Atoi: an optional sign, then decimal digits)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ScheduleError(f'failed to parse int from {text}: strconv.Atoi: parsing '
                            f'"{text}": invalid syntax')
    num = int(text)
    if num < 0:
        raise ScheduleError(f"negative number ({num}) not allowed: {text}")
    return num


def _int_or_name(text: str, names: dict[str, int]) -> int:
    named = names.get(text.lower())
    return named if named is not None else _atoi(text)


def _range(expr: str, b: _Bounds) -> tuple[set[int], bool]:
    """getRange: one comma-separated part of a field."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = False
    if low_high[0] in ("*", "?"):
        start, end, star = b.low, b.high, True
    else:
        start = _int_or_name(low_high[0], b.names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b.names)
        else:
            raise ScheduleError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if len(low_high) == 1:
            end = b.high  # "N/step" means "N-max/step"
        if step > 1:
            star = False
    else:
        raise ScheduleError(f"too many slashes: {expr}")
    if start < b.low:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({b.low}): {expr}")
    if end > b.high:
        raise ScheduleError(f"end of range ({end}) above maximum ({b.high}): {expr}")
    if start > end:
        raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ScheduleError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _field(text: str, b: _Bounds) -> _Field:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        got, part_star = _range(part, b)
        values |= got
        star = star or part_star
    return _Field(frozenset(values), star)


def _parse_go_duration(text: str) -> timedelta:
    """time.ParseDuration for the positive durations ``@every`` takes."""
    try:
        if text.startswith("-"):
            raise ValueError(text)
        nanos = parse_go_duration(text)
    except ValueError:
        raise ScheduleError(
            f'failed to parse duration {text}: time: invalid duration "{text}"') from None
    return timedelta(microseconds=nanos / 1000)


def parse_schedule(spec: str) -> Schedule:
    """cron.ParseStandard; raises ScheduleError with robfig/cron's message."""
    if not spec:
        raise ScheduleError("empty spec string")
    zone: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        name = spec[spec.index("=") + 1:space if space >= 0 else len(spec)]
        try:
            zone = load_zone(name)
        except ScheduleError as e:
            raise ScheduleError(f"provided bad location {name}: {e}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        if spec.startswith(_EVERY):
            return Schedule(every=_parse_go_duration(spec[len(_EVERY):]), zone=zone)
        if spec not in _DESCRIPTORS:
            raise ScheduleError(f"unrecognized descriptor: {spec}")
        spec = _DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: "
                            f"[{' '.join(fields)}]")
    return Schedule(_field(fields[0], _MINUTE), _field(fields[1], _HOUR),
                    _field(fields[2], _DOM), _field(fields[3], _MONTH),
                    _field(fields[4], _DOW), zone=zone)
