"""Many clients at once, on separate connections to the live server: one operation per VM, and
plan limits that hold."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from accounts.models import Plan
from accounts.services import plan_change, token_create
from operations.models import Operation, OperationState
from snapshots.models import Snapshot
from tests.factories import image_row, vm_row
from vms.models import VMState


def post(url, token, body):
    request = urllib.request.Request(  # noqa: S310 (our own live server)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def all_at_once(calls):
    """Run the calls in parallel threads released together; return their answers."""
    barrier = threading.Barrier(len(calls))
    answers = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        answers[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.fixture(autouse=True)
def no_throttle(settings):
    """These tests are about the per-VM lock and plan limits, not about request rates."""
    settings.API_MUTATION_RATE = "100000/min"


@pytest.fixture
def roomy_alice(alice):
    plan = Plan.objects.create(
        slug="roomy", name="Roomy", max_snapshots=100, max_snapshot_bytes=10**15, max_vms=100
    )
    plan_change(user=alice, plan=plan)
    return alice


def test_twenty_parallel_snapshot_requests_start_exactly_one_operation(live_server, roomy_alice):
    vm = vm_row(owner=roomy_alice, image=image_row(), state=VMState.RUNNING)
    token = token_create(user=roomy_alice, name="load")[1]
    url = f"{live_server.url}/api/vms/{vm.pk}/snapshots/"
    for round_number in range(3):
        answers = all_at_once([lambda: post(url, token, {"name": "burst"})] * 20)
        assert sorted(answers) == [202] + [409] * 19, f"round {round_number}"
        assert Operation.objects.active().holding(vm.lock).count() == 1
        Operation.objects.holding(vm.lock).update(state=OperationState.SUCCEEDED)
    assert Snapshot.objects.filter(source_vm=vm).count() == 3


def test_mixed_parallel_actions_on_one_vm_start_exactly_one_operation(live_server, roomy_alice):
    vm = vm_row(owner=roomy_alice, image=image_row(), state=VMState.RUNNING)
    token = token_create(user=roomy_alice, name="load")[1]
    base = f"{live_server.url}/api/vms/{vm.pk}"
    actions = [
        (f"{base}/snapshots/", {"name": "s"}),
        (f"{base}/stop/", {}),
        (f"{base}/stop/", {"force": True}),
        (f"{base}/reboot/", {}),
    ]
    for round_number in range(3):
        calls = [lambda u=u, b=b: post(u, token, b) for u, b in actions * 5]
        answers = all_at_once(calls)
        assert sorted(answers) == [202] + [409] * 19, f"round {round_number}"
        assert Operation.objects.active().holding(vm.lock).count() == 1
        Operation.objects.holding(vm.lock).update(state=OperationState.SUCCEEDED)


def test_the_plan_limit_holds_under_a_burst_over_many_vms(live_server, alice):
    plan_change(user=alice, plan=Plan.objects.get(slug="developer"))  # 3 snapshots
    image = image_row()
    vms = [vm_row(owner=alice, image=image, name=f"vm-{i}") for i in range(10)]
    token = token_create(user=alice, name="load")[1]
    calls = [
        lambda vm=vm: post(f"{live_server.url}/api/vms/{vm.pk}/snapshots/", token, {"name": "s"})
        for vm in vms
    ]
    answers = all_at_once(calls)
    assert sorted(answers) == [202] * 3 + [403] * 7
    assert Snapshot.objects.filter(owner=alice).count() == 3
