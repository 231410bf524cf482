"""What the worker's schedule runs for snapshot policies."""

from schedules.services import policies_run_due


def run_due() -> int:
    """Run the due policies; how many ran."""
    return len(policies_run_due())
