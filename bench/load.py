"""Users' actions while housekeeping runs: each of four running VMs (two users, two VMs each)
cycles take -> restore -> delete the snapshot and the undo point, three rounds, all four at
once, so that the merges the deletions start run beside the next actions; beside the same
cycle on one VM of an idle service (the baseline).

Seconds from the service call to the end of the operation (the worker's code in process, each
VM in a thread of its own; the merges run where the deletions start them), p50 and p95 per
action, with how many actions were refused (none should be) and how many times housekeeping gave
way to a user's action. It measures and prints; it passes or fails on nothing.
"""

from __future__ import annotations

import statistics
import threading
import time

ROUNDS = 3
ACTIONS = ("take", "restore", "delete")


def _cycle(lab, vm, times: dict, refused: list) -> None:
    from core.errors import ServiceError
    from snapshots.models import Snapshot, SnapshotKind
    from snapshots.services import snapshot_delete, snapshot_restore, snapshot_take

    def timed(action, call):
        started = time.perf_counter()
        try:
            operation = call()
        except ServiceError as exc:
            refused.append(f"{action}: {exc}")
            return None
        operation.refresh_from_db()
        times[action].append(time.perf_counter() - started)
        return operation

    for round_number in range(ROUNDS):
        name = f"load {round_number}"
        taken = timed("take", lambda n=name: snapshot_take(vm=vm, user=lab.user, name=n))
        if taken is None:
            continue
        snap = Snapshot.objects.get(pk=taken.subject_id)
        timed("restore", lambda s=snap: snapshot_restore(snapshot=s, vm=vm, user=lab.user))
        timed("delete", lambda s=snap: snapshot_delete(snapshot=s, user=lab.user))
        for undo in Snapshot.objects.filter(source_vm=vm, kind=SnapshotKind.BEFORE_RESTORE):
            timed("delete", lambda s=undo: snapshot_delete(snapshot=s, user=lab.user))


def _summary(times: dict) -> dict:
    found = {}
    for action, values in times.items():
        ordered = sorted(values)
        if ordered:
            found[action] = {
                "n": len(ordered),
                "p50": statistics.median(ordered),
                "p95": ordered[round(0.95 * (len(ordered) - 1))],
            }
    return found


def _run(lab, vms) -> dict:
    from django.db import connection

    times = {action: [] for action in ACTIONS}
    refused: list[str] = []

    def one(vm):
        try:
            _cycle(lab, vm, times, refused)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(vm,)) for vm in vms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"actions": _summary(times), "refused": refused}


def _power_off(lab, vm) -> None:
    from vms.services import vm_stop

    vm_stop(vm=vm, user=lab.user, force=True)


def user_actions_under_load(lab) -> dict:
    from django.utils import timezone

    from operations.models import Operation, OperationState

    idle_vm = lab.vm("load-idle")
    idle = _run(lab, [idle_vm])
    _power_off(lab, idle_vm)
    vms = [lab.vm(f"load-{n}") for n in range(4)]
    since = timezone.now()
    load = _run(lab, vms)
    gave_way = Operation.objects.filter(
        kind__in=["vm.merge", "vm.flatten"],
        state=OperationState.SKIPPED,
        finished_at__gte=since,
    ).count()
    for vm in vms:
        _power_off(lab, vm)
    result = {"idle": idle, "load": load, "gave_way": gave_way, "rounds": ROUNDS}
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [
        "## Users' actions while housekeeping runs",
        "",
        f"Four running VMs at once, each cycling take, restore, delete (the snapshot and the undo "
        f"point) {result['rounds']} times, so that the merges the deletions start run beside the "
        "next actions; baseline: the same cycle on one VM of an idle service. Seconds from the "
        "service call to the end of the operation.",
        "",
        "| action | p50, load | p95, load | p50, idle | p95, idle |",
        "|---|---|---|---|---|",
    ]
    load, idle = result["load"]["actions"], result["idle"]["actions"]
    for action in ACTIONS:
        if action in load and action in idle:
            a, b = load[action], idle[action]
            lines.append(
                f"| {action} ({a['n']} / {b['n']}) | {a['p50']:.2f} | {a['p95']:.2f} | "
                f"{b['p50']:.2f} | {b['p95']:.2f} |"
            )
    lines += [
        "",
        f"Refused under load: {len(result['load']['refused'])}"
        + (f" ({'; '.join(result['load']['refused'][:3])})" if result["load"]["refused"] else "")
        + f". Times housekeeping gave way to a user's action: {result['gave_way']}.",
    ]
    return "\n".join(lines)
