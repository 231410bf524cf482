"""The health check: is each part the service needs up, and if not, what to do about it.

Used by `/healthz` and `manage.py doctor`. Every check returns a `Check` whose message is a
sentence for the person reading it. The messages name versions, hosts, processes and raw errors:
`/healthz` shows them to staff only, and to everyone else just whether each part is up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


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


def check_worker() -> Check:
    from operations.models import WorkerHeartbeat

    max_age = timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE)
    try:
        beat = WorkerHeartbeat.objects.order_by("-last_seen").first()
    except DatabaseError as exc:
        return Check("worker", False, f"Worker heartbeats cannot be read: {exc}")
    if beat is None:
        return Check(
            "worker", False, "No worker has ever reported: start one with `manage.py worker`."
        )
    age = timezone.now() - beat.last_seen
    if age > max_age:
        return Check(
            "worker",
            False,
            f"No worker has reported for {int(age.total_seconds())} s "
            f"(the last was {beat.worker}): start one with `manage.py worker`.",
        )
    return Check("worker", True, f"{beat.worker} reported {int(age.total_seconds())} s ago.")


def check_libvirt(host=None) -> Check:
    from vms import hypervisor
    from vms.selectors import default_host

    host = host or default_host()
    try:
        version = hypervisor.version(host.libvirt_uri)
        pool_ok = hypervisor.pool_exists(host.libvirt_uri, host.pool_name)
    except hypervisor.HypervisorError as exc:
        return Check(
            "libvirt",
            False,
            f"libvirt at {host.libvirt_uri} does not answer ({exc}): start libvirtd.",
        )
    if not pool_ok:
        return Check(
            "libvirt",
            False,
            f"libvirt {version} answers, but the storage pool {host.pool_name!r} is missing "
            "or stopped: run `manage.py bootstrap`.",
        )
    return Check("libvirt", True, f"libvirt {version} answers; pool {host.pool_name!r} is up.")


CHECKS = (check_database, check_broker, check_worker, check_libvirt)


def run_checks() -> list[Check]:
    return [check() for check in CHECKS]
