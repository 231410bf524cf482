"""Task-queue entry points of the operations app. Thin: load by id, call a service."""

from operations import services


def heartbeat() -> None:
    """Scheduled every minute: records that a worker is alive and taking tasks."""
    services.heartbeat_record()
