"""The database queue (operations/broker.py): a task wakes a waiting worker at once instead of at
its next poll, each task is claimed by one worker only, and a worker that cannot listen polls."""

import threading
import uuid

import pytest
from django_q.conf import Conf
from django_q.models import OrmQ

from operations import broker as broker_module
from operations.broker import WakingORM

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue(monkeypatch):
    """A queue of this test's own on the test database."""
    monkeypatch.setattr(Conf, "ORM", "default")
    name = f"test-queue-{uuid.uuid4().hex[:8]}"
    made = []

    def make():
        made.append(WakingORM(list_key=name))
        return made[-1]

    yield make
    for broker in made:
        if broker._listener is not None:
            broker._listener.close()
    OrmQ.objects.filter(key=name).delete()


def dequeue_until_found(broker, found: list, rounds: int) -> None:
    for _ in range(rounds):
        tasks = broker.dequeue()
        if tasks:
            found.extend(tasks)
            return


def test_a_task_wakes_a_waiting_worker_instead_of_its_next_poll(queue, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 60)  # a worker that only polled would wait a minute
    worker, web = queue(), queue()
    worker._listen()  # listening before the task is sent, as a running worker is
    found = []
    waiting = threading.Thread(target=dequeue_until_found, args=(worker, found, 2), daemon=True)
    waiting.start()
    task_id = web.enqueue("payload")
    waiting.join(timeout=20)
    assert not waiting.is_alive(), "the worker was not woken by the task"
    assert found == [(task_id, "payload")]


def test_each_waiting_task_is_claimed_by_one_worker(queue, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    first, second = queue(), queue()
    sent = {first.enqueue(f"task {i}") for i in range(15)}
    claimed = []
    for _ in range(10):
        for broker in (first, second):
            claimed += [task_id for task_id, _ in broker.dequeue() or []]
    assert sorted(claimed) == sorted(sent)


def test_tasks_are_claimed_oldest_first(queue, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    broker = queue()
    sent = [broker.enqueue(f"task {i}") for i in range(3)]
    claimed = []
    for _ in range(5):
        claimed += [task_id for task_id, _ in broker.dequeue() or []]
    assert claimed == sent


def test_a_worker_that_cannot_listen_finds_tasks_by_polling(queue, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.05)

    def refuse(broker):
        raise OSError("address in use")

    monkeypatch.setattr(broker_module, "_SocketListener", refuse)
    monkeypatch.setattr(broker_module, "_PostgresListener", refuse)
    broker = queue()
    assert broker.dequeue() is None
    task_id = broker.enqueue("payload")
    found = []
    dequeue_until_found(broker, found, 5)
    assert found == [(task_id, "payload")]
