"""Task-queue entry points of the operations app. Thin: load by id, call a service."""

from operations import services


def run_operation(operation_id: str) -> None:
    """Run one operation; a second delivery of the same task does nothing."""
    services.operation_run(operation_id)


def heartbeat() -> None:
    """Scheduled every minute: records that a worker is alive and taking tasks."""
    services.heartbeat_record()


def prune() -> str:
    """Scheduled hourly: delete records past their retention."""
    pruned = services.records_prune()
    return ", ".join(f"{count} {what}" for what, count in pruned.items()) + " deleted."
