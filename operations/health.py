"""Health of the task-queue workers, for `core.health`."""

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from core.health import Check


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
