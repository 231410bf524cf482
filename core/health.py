"""The health check: is each part the service needs up, and if not, what to do about it.

Used by `/healthz` and `manage.py doctor`. Every check returns a `Check` whose message is a
sentence for the person reading it. The database and the broker are checked here; the apps
register checks of their own parts (`register`). The messages name versions, hosts, processes
and raw errors: `/healthz` shows them to staff only, and to everyone else just whether each
part is up.

Checks only read: they change no row (the scheduled host check records which hosts answer), so
a probe of `/healthz` costs reads only, and callers other than staff get a result at most
HEALTHZ_CACHE_SECONDS old (`run_checks_cached`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    # One of several parts of a kind (a host, while another answers): down, it degrades the
    # service rather than stopping it.
    partial: bool = False


def check_database(conn=None) -> Check:
    conn = conn or connection
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return Check("database", False, f"The database does not answer: {exc}".strip())
    return Check("database", True, f"{conn.vendor} answers.")


def check_broker(redis_url: str | None = None) -> Check:
    redis_url = redis_url or settings.REDIS_URL
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            return Check("broker", False, f"Redis at REDIS_URL does not answer: {exc}")
        return Check("broker", True, "Redis answers.")
    from django_q.models import OrmQ

    try:
        waiting = OrmQ.objects.count()
    except DatabaseError as exc:
        return Check("broker", False, f"The task table cannot be read: {exc}")
    return Check("broker", True, f"The database queue answers ({waiting} task(s) waiting).")


# Checks of the parts apps bring (a worker, libvirt), registered in their AppConfig.ready, with
# the position they take in the report.
_REGISTERED: list[tuple[int, object]] = []


def register(check, *, order: int) -> None:
    if all(existing is not check for _, existing in _REGISTERED):
        _REGISTERED.append((order, check))


def checks() -> list:
    return [check_database, check_broker] + [c for _, c in sorted(_REGISTERED, key=lambda x: x[0])]


def run_checks() -> list[Check]:
    """Every check's result; a check of several parts of one kind (hosts) gives a list."""
    results = []
    for check in checks():
        found = check()
        results.extend(found if isinstance(found, list) else [found])
    return results


_cached: tuple[float, list[Check]] | None = None
_cache_lock = threading.Lock()


def run_checks_cached(max_age: float) -> list[Check]:
    """`run_checks`, reused while at most `max_age` seconds old. Kept in this process (not the
    shared cache, which may be a database table): each web process checks at most once per
    interval however many probes arrive, and a probe writes nothing anywhere."""
    global _cached
    with _cache_lock:  # callers arriving during a check wait for its result
        now = time.monotonic()
        if _cached is None or now - _cached[0] >= max_age:
            _cached = (now, run_checks())
        return _cached[1]


def forget_cached() -> None:
    """Drop the kept result (tests, and anything that knows it is stale)."""
    global _cached
    with _cache_lock:
        _cached = None
