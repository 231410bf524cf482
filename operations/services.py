"""Business rules for operations and the workers that run them."""

import os
import socket

from django.utils import timezone

from operations.models import WorkerHeartbeat

# Periodic tasks, by name: (function, minutes between runs).
SCHEDULES = {
    "worker heartbeat": ("operations.tasks.heartbeat", 1),
}


def heartbeat_record() -> WorkerHeartbeat:
    """Record that the worker running this code is alive now."""
    worker = f"{socket.gethostname()}:{os.getppid()}"
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        worker=worker, defaults={"last_seen": timezone.now()}
    )
    return beat


def schedules_ensure(*, using: str = "default") -> None:
    """Create or update the periodic tasks the task queue's scheduler runs."""
    from django_q.models import Schedule

    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
