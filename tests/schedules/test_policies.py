"""Snapshot policies: when they run, what retention keeps, and what they never delete.

Rule tests with a controlled clock: the worker's part of a take (the disk switch) is played by
`finish`, which marks the operation done and the snapshot ready, as the worker would.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from accounts.models import Plan
from operations.models import Operation, OperationState
from schedules import cadence, retention
from schedules.models import PolicyRun, PolicyRunOutcome
from schedules.services import policies_run_due, policy_set
from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from snapshots.services import snapshot_take
from tests.factories import vm_row

START = datetime(2026, 11, 5, 0, 0, tzinfo=UTC)  # a Thursday


def roomy(user, snapshots=1000):
    plan = Plan.objects.create(
        slug=f"roomy-{snapshots}",
        name="Roomy",
        max_snapshots=snapshots,
        max_snapshot_bytes=10**15,
        max_vms=10,
    )
    user.plan = plan
    user.save(update_fields=["plan"])


def finish(operation: Operation) -> None:
    Operation.objects.filter(pk=operation.pk).update(
        state=OperationState.SUCCEEDED, finished_at=timezone.now()
    )
    if operation.subject_pk:
        Snapshot.objects.filter(pk=operation.subject_pk).update(state=SnapshotState.READY)


def run_at(moment: datetime) -> list[PolicyRun]:
    runs = policies_run_due(now=moment)
    for run in runs:
        if run.operation is not None and run.operation.state == OperationState.QUEUED:
            finish(run.operation)
    return runs


def hourly_policy(vm, **keep):
    return policy_set(
        vm=vm,
        enabled=True,
        schedule="hourly",
        timezone_name="UTC",
        now=START - timedelta(1),
        **keep,
    )


def scheduled_slots(vm) -> set[datetime]:
    return {
        run.slot
        for run in PolicyRun.objects.filter(
            policy__vm=vm, snapshot__isnull=False, snapshot__pinned=False
        )
    }


@pytest.mark.django_db
def test_fourteen_days_of_hourly_snapshots_keep_what_the_retention_options_say(alice):
    roomy(alice)
    vm = vm_row(owner=alice)
    hourly_policy(vm, keep_hourly=24, keep_daily=7, keep_weekly=4)
    manual = snapshot_take(vm=vm, user=alice, name="by hand")
    finish(manual)
    pinned_slot = START + timedelta(days=1, hours=10)

    for hour in range(14 * 24):
        moment = START + timedelta(hours=hour, seconds=20)
        run_at(moment)
        if moment - timedelta(seconds=20) == pinned_slot:
            Snapshot.objects.filter(policy_runs__slot=pinned_slot).update(pinned=True)

    last_day = START + timedelta(days=13)  # Wednesday 18 November
    expected = {last_day + timedelta(hours=h) for h in range(24)}  # keep-hourly 24
    expected |= {last_day - timedelta(days=d) + timedelta(hours=23) for d in range(1, 8)}  # daily
    # keep-weekly: the ISO weeks of 9-15 and 16-22 November already have a kept snapshot; the
    # week of 2-8 November keeps its newest, Sunday 8 November 23:00 (no older weeks exist).
    expected.add(datetime(2026, 11, 8, 23, 0, tzinfo=UTC))
    assert scheduled_slots(vm) == expected
    assert len(expected) == 32
    assert Snapshot.objects.filter(pk=manual.subject_pk, kind=SnapshotKind.MANUAL).exists()
    assert Snapshot.objects.filter(pinned=True, policy_runs__slot=pinned_slot).exists()


def test_retention_keeps_the_newest_of_each_period_and_skips_periods_already_kept():
    utc = ZoneInfo("UTC")
    day = datetime(2026, 12, 1, tzinfo=UTC)
    items = [
        (f"{d}-{h}", day - timedelta(days=d) + timedelta(hours=h))
        for d in range(4)
        for h in (1, 9, 17)
    ]
    kept = retention.kept(items, retention.Keep(last=2, daily=2), utc)
    # keep-last takes 0-17 and 0-9; day 0 is then covered, so keep-daily takes days 1 and 2.
    assert kept == {"0-17", "0-9", "1-17", "2-17"}


def test_retention_with_no_option_keeps_everything():
    items = [("a", START), ("b", START + timedelta(hours=1))]
    assert retention.kept(items, retention.Keep(), ZoneInfo("UTC")) == {"a", "b"}


@pytest.mark.django_db
def test_a_plan_at_its_limit_skips_the_run_and_says_so(alice):
    roomy(alice, snapshots=2)
    vm = vm_row(owner=alice)
    for name in ("one", "two"):
        finish(snapshot_take(vm=vm, user=alice, name=name))
    hourly_policy(vm, keep_last=3)

    (run,) = run_at(START + timedelta(seconds=5))

    assert run.outcome == PolicyRunOutcome.SKIPPED
    assert run.message.startswith("Skipped: plan limit")
    skipped = Operation.objects.get(pk=run.operation_id)
    assert skipped.state == OperationState.SKIPPED and skipped.subject == vm
    assert "plan limit" in skipped.message
    assert set(Snapshot.objects.values_list("name", flat=True)) == {"one", "two"}


@pytest.mark.django_db
def test_retention_makes_room_before_taking_when_the_plan_is_full(alice):
    roomy(alice, snapshots=2)
    vm = vm_row(owner=alice)
    hourly_policy(vm, keep_last=2)
    for hour in range(3):
        (run,) = run_at(START + timedelta(hours=hour, seconds=5))
        assert run.outcome == PolicyRunOutcome.TAKEN
    assert scheduled_slots(vm) == {START + timedelta(hours=1), START + timedelta(hours=2)}


@pytest.mark.django_db
def test_pinned_snapshots_are_never_pruned_and_do_not_count_for_retention(alice):
    roomy(alice)
    vm = vm_row(owner=alice)
    hourly_policy(vm, keep_last=1)
    (first,) = run_at(START + timedelta(seconds=5))
    Snapshot.objects.filter(pk=first.snapshot_id).update(pinned=True)
    run_at(START + timedelta(hours=1, seconds=5))
    run_at(START + timedelta(hours=2, seconds=5))
    assert Snapshot.objects.filter(pk=first.snapshot_id).exists()
    assert scheduled_slots(vm) == {START + timedelta(hours=2)}


@pytest.mark.django_db
def test_missed_slots_are_not_replayed_after_downtime(alice):
    roomy(alice)
    vm = vm_row(owner=alice)
    policy = hourly_policy(vm, keep_last=10)
    runs = run_at(START + timedelta(hours=5, minutes=30))
    assert [run.slot for run in runs] == [START + timedelta(hours=5)]
    policy.refresh_from_db()
    assert policy.next_run_at == START + timedelta(hours=6)
    assert run_at(START + timedelta(hours=5, minutes=31)) == []


@pytest.mark.django_db
def test_running_the_same_slot_twice_takes_one_snapshot(alice):
    roomy(alice)
    vm = vm_row(owner=alice)
    policy = hourly_policy(vm, keep_last=10)
    moment = START + timedelta(seconds=5)
    run_at(moment)
    type(policy).objects.filter(pk=policy.pk).update(next_run_at=START)  # as if not moved on
    assert run_at(moment) == []
    assert Snapshot.objects.filter(source_vm=vm).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluating_the_same_slot_make_one_snapshot(alice):
    if connection.vendor != "postgresql":
        pytest.skip("parallel writers need PostgreSQL (SQLite serializes them)")
    roomy(alice)
    vm = vm_row(owner=alice)
    hourly_policy(vm, keep_last=10)
    moment = START + timedelta(seconds=5)
    barrier = threading.Barrier(2)
    results = []

    def worker():
        barrier.wait()
        try:
            results.append(policies_run_due(now=moment))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(runs) for runs in results) == [0, 1]
    assert PolicyRun.objects.count() == 1
    assert Snapshot.objects.filter(source_vm=vm).count() == 1


@pytest.mark.parametrize(
    ("schedule", "cron"),
    [
        ("hourly", "0 * * * *"),
        ("Hourly at :15", "15 * * * *"),
        ("daily at 03:30", "30 3 * * *"),
        ("weekly on mon at 22:05", "5 22 * * 1"),
        ("weekly", "0 0 * * 0"),
        ("*/15 * * * *", "*/15 * * * *"),
    ],
)
def test_schedules_in_words_or_cron_mean_a_cron_expression(schedule, cron):
    assert cadence.cron_for(schedule) == cron


@pytest.mark.parametrize(
    "schedule", ["", "sometimes", "daily at 25:00", "weekly on xyz", "61 * * * *", "* * * *"]
)
def test_a_schedule_that_means_nothing_is_refused(schedule):
    with pytest.raises(ValidationError) as info:
        cadence.cron_for(schedule)
    assert "schedule" in info.value.message_dict


def test_a_daily_time_is_in_the_policys_time_zone():
    berlin = cadence.zone("Europe/Berlin")
    after = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert cadence.next_after("0 3 * * *", berlin, after) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValidationError):
        cadence.zone("Mars/Olympus")
