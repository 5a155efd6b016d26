"""Cron monitor schedules: crontab expressions and intervals, and when the next check-in is due.

Pure functions, no I/O. Crontab: five fields (minute hour day-of-month month day-of-week) with
``*``, lists, ranges, steps and month/weekday names, evaluated in the monitor's time zone; as in
cron, when both day fields are restricted a day matching either one fires. Intervals: ``N`` of
minute, hour, day, week, month or year after the previous expected time.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Schedule", "ScheduleError", "parse_schedule"]

_NAMES = {
    3: {name.lower(): index for index, name in enumerate(calendar.month_abbr) if name},
    4: {name.lower(): (index + 1) % 7 for index, name in enumerate(calendar.day_abbr)},
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}
#: Searching further than this for the next fire time means the expression never fires.
_HORIZON_DAYS = 366 * 5


class ScheduleError(ValueError):
    """A schedule that cannot be parsed; the message says which part."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``next_after(t)`` is the first due time strictly after unix time ``t``."""

    kind: str
    value: str
    tz: str = "UTC"
    fields: tuple[frozenset[int], ...] = ()
    day_restricted: tuple[bool, bool] = (False, False)
    every: int = 0
    unit: str = ""

    def next_after(self, after: float) -> float:
        """Return the next due time (unix seconds) after ``after``. Raises ScheduleError if never."""
        if self.kind == "interval":
            return self._next_interval(after)
        zone = ZoneInfo(self.tz)
        moment = datetime.fromtimestamp(after, zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        minutes, hours, days, months, weekdays = self.fields
        limit = moment + timedelta(days=_HORIZON_DAYS)
        while moment < limit:
            if moment.month not in months:
                moment = (moment.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(moment, days, weekdays):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if moment.hour not in hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
                continue
            if moment.minute not in minutes:
                moment += timedelta(minutes=1)
                continue
            return moment.timestamp()
        raise ScheduleError(f"crontab {self.value!r} never fires")

    def _day_matches(self, moment: datetime, days: frozenset[int], weekdays: frozenset[int]) -> bool:
        weekday = (moment.weekday() + 1) % 7  # cron: 0 = Sunday
        day_ok, weekday_ok = moment.day in days, weekday in weekdays or (weekday == 0 and 7 in weekdays)
        restrict_day, restrict_weekday = self.day_restricted
        if restrict_day and restrict_weekday:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def _next_interval(self, after: float) -> float:
        if self.unit in _UNITS:
            return after + self.every * _UNITS[self.unit]
        moment = datetime.fromtimestamp(after, timezone.utc)
        months = self.every * (12 if self.unit == "year" else 1)
        month_index = moment.month - 1 + months
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day).timestamp()


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    low, high = _RANGES[index]
    values: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"bad step in {text!r}")
        if body == "*":
            start, end = low, high
        else:
            first, _, last = body.partition("-")
            start, end = _value(first, index), _value(last, index) if last else None
            end = end if end is not None else (high if step else start)
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleError(f"{text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step or 1))
    return frozenset(values), text != "*"


def _value(text: str, index: int) -> int:
    if text.isdigit():
        return int(text)
    names = _NAMES.get(index, {})
    if text in names:
        return names[text]
    raise ScheduleError(f"{text!r} is not a number{' or a name' if names else ''}")


def parse_schedule(raw: object, tz: object = "UTC") -> Schedule:
    """Parse a check-in's ``monitor_config.schedule``. Raises ScheduleError saying what is wrong."""
    tz = tz if isinstance(tz, str) and tz else "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {tz!r}") from exc
    if not isinstance(raw, dict):
        raise ScheduleError("schedule must be an object with type and value")
    kind, value = raw.get("type"), raw.get("value")
    if kind == "crontab" and isinstance(value, str):
        parts = value.split()
        if len(parts) != 5:
            raise ScheduleError(f"crontab {value!r} must have 5 fields")
        parsed = [_field(part, index) for index, part in enumerate(parts)]
        schedule = Schedule("crontab", value, tz, tuple(p[0] for p in parsed), (parsed[2][1], parsed[4][1]))
        schedule.next_after(0)  # an expression that can never fire is refused now
        return schedule
    if kind == "interval":
        unit = raw.get("unit")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ScheduleError("interval value must be a positive integer")
        if unit not in ("minute", "hour", "day", "week", "month", "year"):
            raise ScheduleError(f"unknown interval unit {unit!r}")
        return Schedule("interval", f"{value} {unit}", tz, every=value, unit=unit)
    raise ScheduleError(f"unknown schedule type {kind!r}")
