"""What the worker's schedule runs for exports."""

from transfers.services import exports_expire


def expire() -> int:
    """Delete expired exports; how many."""
    return exports_expire()
