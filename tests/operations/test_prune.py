"""Records that only grow are pruned, each after its retention."""

from datetime import timedelta

from django.utils import timezone

from operations.models import IdempotentRequest, WorkerHeartbeat
from operations.services import PERIODIC_TASKS, records_prune
from tests.factories import host_row
from vms import reconciler
from vms.models import OrphanSighting, ReconcileRun


def test_records_older_than_their_retention_are_deleted_and_newer_ones_kept(alice, settings):
    settings.RECORD_RETENTION_DAYS = 30
    settings.IDEMPOTENCY_KEY_HOURS = 24
    now = timezone.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    for when, tag in ((old, "old"), (recent, "recent")):
        WorkerHeartbeat.objects.create(worker=tag, last_seen=when)
    stale_key = IdempotentRequest.objects.create(owner=alice, key="old", fingerprint="x")
    IdempotentRequest.objects.filter(pk=stale_key.pk).update(created_at=now - timedelta(hours=25))
    IdempotentRequest.objects.create(owner=alice, key="new", fingerprint="x")

    pruned = records_prune(now=now)

    assert pruned["worker heartbeats"] == 1
    assert list(WorkerHeartbeat.objects.values_list("worker", flat=True)) == ["recent"]
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]


def test_the_reconcilers_records_older_than_their_retention_are_deleted(db, settings):
    settings.RECORD_RETENTION_DAYS = 30
    now = timezone.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    host = host_row()
    for when, tag in ((old, "old"), (recent, "recent")):
        ReconcileRun.objects.create(started_at=when, finished_at=when, summary=tag)
        OrphanSighting.objects.create(host=host, kind="volume", name=tag, first_seen=when)

    pruned = reconciler.records_prune(now=now)

    assert pruned == {"reconcile runs": 1, "orphan sightings": 1}
    assert list(ReconcileRun.objects.values_list("summary", flat=True)) == ["recent"]
    assert list(OrphanSighting.objects.values_list("name", flat=True)) == ["recent"]


def test_pruning_is_scheduled():
    assert PERIODIC_TASKS["prune old records"][0] == "operations.tasks.prune"
