"""A task that only says when it started: what the queue-latency benchmark enqueues."""

import os
import time


def started_at(enqueued_at: float, out: str) -> None:
    """Append the seconds since `enqueued_at` to the file `out` (one line, one write)."""
    line = f"{time.time() - enqueued_at:.6f}\n".encode()
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
