"""A task that only says when it started: what the queue-latency benchmark enqueues."""

import time


def started_at(enqueued_at: float) -> float:
    return time.time() - enqueued_at
