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
    logger.warning("Failpoint %s reached; waiting here to be killed.", name)
    folder = Path(settings.FAILPOINT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).touch()
    while True:
        time.sleep(1)


def failpoint_until(name: str, condition) -> None:
    """Like `failpoint`, but the worker goes on once `condition()` is true: a test holds a job
    at a named place until what it waits for happens (housekeeping, until it is told to give
    way)."""
    if name not in settings.FAILPOINTS:
        return
    logger.warning("Failpoint %s reached; waiting here until told to go on.", name)
    folder = Path(settings.FAILPOINT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).touch()
    while not condition():
        time.sleep(0.1)
