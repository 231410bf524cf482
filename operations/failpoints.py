"""Failpoints: named places in a job where a crash-safety test can stop a worker.

With `FAILPOINTS=name,...` set, a worker that reaches one of those places records it (a file
named after it in FAILPOINT_DIR) and waits there, so a test can kill it at exactly that moment
and check that nothing is lost. Unset, as in production, a failpoint does nothing.
"""

import logging
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


def failpoint(name: str) -> None:
    if name not in settings.FAILPOINTS:
        return
    _reached(name, "waiting here to be killed")
    while True:
        time.sleep(1)


def failpoint_until(name: str, condition) -> None:
    """Like `failpoint`, but the worker goes on once `condition()` is true: a test holds a job
    at a named place until what it waits for happens (housekeeping, until it is told to give
    way)."""
    if name not in settings.FAILPOINTS:
        return
    _reached(name, "waiting here until told to go on")
    while not condition():
        time.sleep(0.1)


def _reached(name: str, what: str) -> None:
    """Say so in the log and in a file named after the failpoint, which the test waits for."""
    logger.warning("Failpoint %s reached; %s.", name, what)
    folder = Path(settings.FAILPOINT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).touch()
