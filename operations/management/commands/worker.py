"""`manage.py worker`: the task-queue cluster, with quick repair of dead workers' operations and a
stop that takes seconds.

It runs django-q2's cluster (as `manage.py qcluster` would) and, in this main process,

- every few seconds fails the operations whose worker died (their lease ran out) and repairs
  what they left half-done, so a dead worker's operation ends within seconds of a live worker
  being there, not at its deadline;
- at start, sends again the tasks of operations still queued (a stopped or killed worker may
  have taken their task without claiming them);
- on SIGTERM or SIGINT, claims nothing new, waits up to WORKER_STOP_GRACE seconds for the
  operations it runs, then stops the cluster (killing it if it lingers). An operation that was
  still running is handed over: its lease is ended at once, so the next worker to run (this one
  started again, or any other) repairs it in seconds. It says which it was.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections
from django.utils import timezone

from operations.models import Operation, OperationState
from operations.services import (
    CLUSTER_ENV,
    STOP_FILE_ENV,
    operations_expire,
    operations_resend,
)

SWEEP_SECONDS = 5
# How long the cluster gets to stop by itself once no operation runs, before it is killed.
CLUSTER_STOP_SECONDS = 3


class Command(BaseCommand):
    help = (
        "Run the task-queue worker: operations, schedules, and repair of operations whose "
        "worker died. SIGTERM or Ctrl-C stops it within seconds."
    )

    def handle(self, *args, **options):
        from django_q.cluster import Cluster

        settings.SECRET_KEY  # noqa: B018  (tasks are signed with it: fail now, not later)
        self.cluster_name = f"{socket.gethostname()}:{os.getpid()}"
        stop_dir = Path(tempfile.mkdtemp(prefix="koding-worker-"))
        self.stop_file = stop_dir / "stopping"
        # Inherited by the cluster's processes, which are forked from this one.
        os.environ[CLUSTER_ENV] = self.cluster_name
        os.environ[STOP_FILE_ENV] = str(self.stop_file)
        self.stop_requested = False
        try:
            # The cluster's processes are forked: none may inherit an open database connection.
            connections.close_all()
            cluster = Cluster()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._request_stop)
            cluster.start()
            started = timezone.now()
            self._log(f"Worker {self.cluster_name} running.")
            self._guarded(lambda: self._resend(started))
            while not self.stop_requested:
                if not cluster.sentinel.is_alive():
                    self._log("The task-queue cluster ended by itself; stopping.")
                    break
                self._guarded(self._sweep)
                self._sleep(SWEEP_SECONDS)
            self._stop(cluster)
        finally:
            self.stop_file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                stop_dir.rmdir()

    # --- while running ----------------------------------------------------------------------

    def _request_stop(self, signum, frame):
        self.stop_requested = True

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop_requested and time.monotonic() < end:
            time.sleep(0.1)

    def _guarded(self, step) -> None:
        """A step that fails (a database that blinks) is tried again next time round."""
        close_old_connections()
        try:
            step()
        except Exception as exc:
            self._log(f"Sweep failed ({exc}); trying again in {SWEEP_SECONDS} s.")
            connections.close_all()

    def _resend(self, started) -> None:
        count = operations_resend(before=started)
        if count:
            self._log(f"Sent again the tasks of {count} operation(s) waiting in the queue.")

    def _sweep(self) -> None:
        for operation in operations_expire():
            self._log(f"Repaired {operation.kind} on {operation.target_name!r}: {operation.error}")

    # --- stopping -----------------------------------------------------------------------------

    def _mine(self):
        return Operation.objects.filter(
            state=OperationState.RUNNING, worker__startswith=f"{self.cluster_name}/"
        )

    def _stop(self, cluster) -> None:
        grace = settings.WORKER_STOP_GRACE
        self.stop_file.touch()  # the cluster's workers claim nothing new from now on
        running = self._guarded_list()
        if running:
            names = ", ".join(f"{o.kind} on {o.target_name!r}" for o in running)
            self._log(f"Stopping: waiting up to {grace} s for {names} to finish.")
            end = time.monotonic() + grace
            while running and time.monotonic() < end:
                time.sleep(0.2)
                running = self._guarded_list()
        else:
            self._log("Stopping: no operation is running.")
        if cluster.sentinel.is_alive() and not running:
            # Setting the event takes a lock the sentinel shares: if the sentinel was killed while
            # holding it, the call would never return, so it is made in a thread of its own.
            threading.Thread(target=cluster.stop_event.set, daemon=True).start()
            cluster.sentinel.join(CLUSTER_STOP_SECONDS)
        if cluster.sentinel.is_alive():
            _kill_descendants(os.getpid())
            cluster.sentinel.join(5)
        # Whatever still shows as running here was cut short: hand it over now rather than when
        # its lease would have run out.
        left = self._guarded_list()
        if left:
            with contextlib.suppress(Exception):
                Operation.objects.filter(
                    pk__in=[o.pk for o in left], state=OperationState.RUNNING
                ).update(lease_expires_at=timezone.now())
        for operation in left:
            self._log(
                f"{operation.kind} on {operation.target_name!r} did not finish within {grace} s "
                "and was stopped; the next worker to run repairs it within seconds of starting."
            )
        self._log(f"Worker {self.cluster_name} stopped.")

    def _guarded_list(self) -> list[Operation]:
        try:
            close_old_connections()
            return list(self._mine())
        except Exception:
            connections.close_all()
            return []

    def _log(self, line: str) -> None:
        self.stdout.write(f"{timezone.now():%Y-%m-%d %H:%M:%S} worker: {line}")
        self.stdout.flush()


def _kill_descendants(pid: int) -> None:
    """SIGKILL every process below `pid` (the cluster's sentinel, workers, monitor, pusher)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the fields follow the last ")".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    todo, found = [pid], []
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    for child in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
