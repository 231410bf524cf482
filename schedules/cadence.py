"""When a policy runs: a schedule in words ("hourly", "daily at 03:30", "weekly on sun at 03:30")
or a five-field cron expression, evaluated in the policy's time zone (daylight saving included).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError

DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
PRESETS = {
    "hourly": "Every hour, on the hour",
    "daily at HH:MM": "Every day at that time",
    "weekly on DAY at HH:MM": "Every week on that day (sun … sat) at that time",
}
_HOURLY = re.compile(r"hourly(?: at :(?P<minute>\d{1,2}))?")
_DAILY = re.compile(r"daily(?: at (?P<hour>\d{1,2}):(?P<minute>\d{2}))?")
_WEEKLY = re.compile(
    r"weekly(?: on (?P<day>[a-z]{3}))?(?: at (?P<hour>\d{1,2}):(?P<minute>\d{2}))?"
)
SCHEDULE_HELP = (
    'Write "hourly", "daily at 03:30", "weekly on sun at 03:30", or a cron expression of five '
    'fields ("*/15 * * * *").'
)


def cron_for(schedule: str) -> str:
    """The cron expression a schedule stands for; ValidationError when it is neither a preset
    nor a valid five-field expression."""
    text = " ".join(schedule.lower().split())
    expression = _preset(text)
    if expression is None:
        if len(text.split()) != 5:
            raise ValidationError({"schedule": SCHEDULE_HELP})
        expression = text
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))
    except CronSimError as exc:
        raise ValidationError({"schedule": f"{exc}. {SCHEDULE_HELP}"}) from exc
    return expression


def _preset(text: str) -> str | None:
    if match := _HOURLY.fullmatch(text):
        minute = int(match["minute"] or 0)
        return f"{minute} * * * *" if minute < 60 else None
    for pattern in (_DAILY, _WEEKLY):
        if match := pattern.fullmatch(text):
            hour, minute = int(match["hour"] or 0), int(match["minute"] or 0)
            if hour > 23 or minute > 59:
                raise ValidationError({"schedule": "Give a time between 00:00 and 23:59."})
            if pattern is _DAILY:
                return f"{minute} {hour} * * *"
            day = match["day"] or "sun"
            if day not in DAYS:
                raise ValidationError({"schedule": f"Name the day as one of {', '.join(DAYS)}."})
            return f"{minute} {hour} * * {DAYS.index(day)}"
    return None


def zone(name: str) -> ZoneInfo:
    """The time zone of that IANA name; ValidationError for an unknown one."""
    if name not in _zone_names():
        raise ValidationError({"timezone": f"{name!r} is not a time zone (e.g. Europe/Berlin)."})
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError({"timezone": f"{name!r} is not a time zone."}) from exc


def _zone_names() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones() | {"UTC"}
    return _ZONES


_ZONES: set[str] | None = None


def next_after(expression: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first time the expression names strictly after `after`."""
    return next(CronSim(expression, after.astimezone(tz).replace(microsecond=0)))


def latest_at_or_before(expression: str, tz: ZoneInfo, moment: datetime) -> datetime:
    """The last time the expression names at or before `moment`: the slot a run at `moment`
    stands for (earlier missed slots are not replayed)."""
    start = moment.astimezone(tz).replace(microsecond=0) + timedelta(seconds=1)
    return next(CronSim(expression, start, reverse=True))
