"""This app's step of `manage.py bootstrap`."""

from core.bootstrap import Options


def first_heartbeat(out, options: Options) -> None:
    """Lets the health check see a worker as soon as one starts, not a minute later."""
    from django_q.tasks import async_task

    async_task("operations.tasks.heartbeat", task_name="heartbeat at start")
