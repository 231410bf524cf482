"""The bench's settings with django-q2's own database broker, which finds a task only by asking
the database every 0.2 s: the queue benchmark's baseline."""

from bench.settings import *  # noqa: F403

Q_CLUSTER = {key: value for key, value in Q_CLUSTER.items() if key != "broker_class"}  # noqa: F405
