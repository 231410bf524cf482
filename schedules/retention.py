"""Which scheduled snapshots a policy keeps, decided the way Proxmox Backup Server prunes.

The options are applied in order: keep-last, -hourly, -daily, -weekly, -monthly, -yearly. Each
walks the snapshots from the newest and keeps the newest one of each period (hour, day, ISO week,
month, year, in the policy's time zone) until it has kept as many periods as it is told. A period
that an earlier option already kept a snapshot in is skipped, and a snapshot that is not the
newest of its period is marked for removal, so a later option never brings it back. Whatever no
option kept is removed. With every option at 0 nothing is removed.

Pure functions on (key, time) pairs: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Keep:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    @property
    def anything(self) -> bool:
        """Whether any option is set (otherwise every snapshot is kept)."""
        return any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly))


def _periods() -> list[tuple[str, Callable[[Hashable, datetime], Hashable]]]:
    return [
        ("last", lambda key, t: key),
        ("hourly", lambda key, t: (t.year, t.month, t.day, t.hour)),
        ("daily", lambda key, t: (t.year, t.month, t.day)),
        ("weekly", lambda key, t: t.isocalendar()[:2]),
        ("monthly", lambda key, t: (t.year, t.month)),
        ("yearly", lambda key, t: t.year),
    ]


def kept(items: Iterable[tuple[Hashable, datetime]], keep: Keep, tz: ZoneInfo) -> set[Hashable]:
    """The keys of the items the options keep; `items` are (key, aware time) pairs."""
    newest_first = sorted(
        ((key, when.astimezone(tz)) for key, when in items), key=lambda item: item[1], reverse=True
    )
    if not keep.anything:
        return {key for key, _ in newest_first}
    marks: dict[Hashable, bool] = {}  # key -> kept?
    for option, period_of in _periods():
        count = getattr(keep, option)
        if count <= 0:
            continue
        covered = {period_of(key, t) for key, t in newest_first if marks.get(key)}
        included: set[Hashable] = set()
        for key, t in newest_first:
            if key in marks:
                continue
            period = period_of(key, t)
            if period in covered:
                continue
            if period in included:
                marks[key] = False
                continue
            if len(included) >= count:
                break
            included.add(period)
            marks[key] = True
    return {key for key, keep_it in marks.items() if keep_it}
