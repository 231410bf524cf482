"""Operations: the record of every long-running action, and the workers that run them."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time a task-queue worker ran the heartbeat task: proof that tasks get done."""

    worker = models.CharField(max_length=200, unique=True)
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self):
        return f"{self.worker} at {self.last_seen:%Y-%m-%d %H:%M:%S}"
