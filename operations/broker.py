"""The database queue, woken at once (`Q_CLUSTER["broker_class"]` when there is no Redis).

django-q2's database broker finds a new task by asking the database every `poll` seconds, so a
task waits half a poll on average before a worker starts it. This broker is the same queue (the
same table, the same claims) with a wake-up beside it:

- on PostgreSQL, an enqueue sends `NOTIFY` in the transaction that inserts the task, so every
  worker that `LISTEN`s, on this machine or another, wakes when the task is committed;
- on SQLite (one machine by nature), an enqueue sends a datagram to a socket the worker's pusher
  listens on, named in the abstract namespace after the database file and the queue, once the
  task is committed.

A wake-up is only a hint: a lost one costs one poll, as before. Two workers on one machine
sharing a SQLite queue: the second cannot take the socket's name and polls.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
from time import sleep

from django.db import connections, transaction
from django_q.brokers.orm import ORM
from django_q.conf import Conf, logger

# Tasks claimed at once. At most the cluster's task queue (workers squared by default): claimed
# tasks wait in the pusher while that queue is full, where no other worker can take them.
CLAIM_BATCH = max(1, min(10, Conf.QUEUE_LIMIT or 10))


def _queue_key(list_key: str) -> str:
    settings_dict = connections[Conf.ORM].settings_dict
    where = f"{settings_dict.get('HOST')}:{settings_dict.get('PORT')}/{settings_dict['NAME']}"
    return hashlib.sha256(f"{where}|{list_key}".encode()).hexdigest()[:24]


def _is_postgresql() -> bool:
    return connections[Conf.ORM].vendor == "postgresql"


class WakingORM(ORM):
    """django-q2's database broker, with a wake-up for each task enqueued."""

    _listener = None  # made in the process that dequeues (the pusher), never pickled

    # --- enqueue ------------------------------------------------------------------------------

    def enqueue(self, task):
        task_id = super().enqueue(task)
        if _is_postgresql():
            with connections[Conf.ORM].cursor() as cursor:
                # Delivered when the insert commits, and only then.
                cursor.execute("SELECT pg_notify(%s, '')", [self._channel()])
        else:
            transaction.on_commit(self._wake_local, using=Conf.ORM)
        return task_id

    def _channel(self) -> str:
        return f"ks_queue_{_queue_key(self.list_key)}"

    def _socket_name(self) -> bytes:
        return b"\0koding-snapshots-queue-" + _queue_key(self.list_key).encode()

    def _wake_local(self) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                sender.setblocking(False)
                sender.sendto(b"!", self._socket_name())
        except OSError:
            pass  # nobody listens (no worker, or one that polls), or its buffer is full

    # --- dequeue ------------------------------------------------------------------------------

    def dequeue(self):
        listener = self._listen()  # before looking, so that a task enqueued meanwhile wakes us
        tasks = self._claim()
        if tasks:
            return tasks
        if listener is None:
            sleep(Conf.POLL)
        else:
            self._wait(listener)
        return None

    def _claim(self):
        """Claim up to a batch of waiting tasks in one update: each task's lock is moved forward
        to this claim's own moment, and the tasks that carry it are this worker's (a task another
        worker claimed first no longer matches `lock < now`)."""
        queue = self.get_connection()  # one connection check per claim, not one per task
        now = _now()
        waiting = list(
            queue.filter(key=self.list_key, lock__lt=now)
            .order_by("id")
            .values_list("id", flat=True)[:CLAIM_BATCH]
        )
        if not waiting:
            return []
        mine = self.timeout(None)
        moved = queue.filter(id__in=waiting, lock__lt=now).update(lock=mine)
        claimed = queue.filter(id__in=waiting, lock=mine).order_by("id")
        if not moved:
            return []
        return list(claimed.values_list("id", "payload"))

    def _listen(self):
        if self._listener is None:
            try:
                if _is_postgresql():
                    self._listener = _PostgresListener(self)
                else:
                    self._listener = _SocketListener(self)
            except Exception as exc:  # the queue still works: it polls
                logger.warning(f"Queue wake-ups unavailable ({exc}); polling every {Conf.POLL} s.")
                self._listener = _NoListener()
        return None if isinstance(self._listener, _NoListener) else self._listener

    def _wait(self, listener) -> None:
        try:
            listener.wait(Conf.POLL)
        except Exception as exc:
            logger.warning(f"Queue wake-ups lost ({exc}); listening again.")
            listener.close()
            self._listener = None
            sleep(Conf.POLL)


def _now():
    from django.utils import timezone

    return timezone.now()


class _NoListener:
    def close(self) -> None:
        pass


class _SocketListener:
    """A datagram socket in the abstract namespace: gone with the process, no file left."""

    def __init__(self, broker: WakingORM):
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.socket.bind(broker._socket_name())
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)

    def wait(self, timeout: float) -> None:
        ready, _, _ = select.select([self.socket], [], [], timeout)
        if ready:
            self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self.socket.recv(64):
                pass

    def close(self) -> None:
        self.socket.close()


class _PostgresListener:
    """A connection of its own that LISTENs on the queue's channel."""

    def __init__(self, broker: WakingORM):
        import psycopg2

        wrapper = connections[Conf.ORM]
        self.connection = psycopg2.connect(**wrapper.get_connection_params())
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {broker._channel()}")  # a name of hex digits we made

    def wait(self, timeout: float) -> None:
        ready, _, _ = select.select([self.connection], [], [], timeout)
        if ready:
            self.connection.poll()
            self.connection.notifies.clear()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
