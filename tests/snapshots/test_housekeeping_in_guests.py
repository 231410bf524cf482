"""Housekeeping never stands in the user's way, on real guests and a real worker: a snapshot
taken while the merge of a deleted one runs is accepted and done, the merge giving way and
finishing later; and users cycling take, restore and delete on four guests at once are never
refused."""

import json
import statistics
import threading
import time
import urllib.error
import urllib.request

import pytest

from accounts.models import Plan
from accounts.services import plan_change, token_create
from operations.models import Operation, OperationState
from tests import guest
from tests.conftest import Worker, wait_for
from vms import layers
from vms.models import VM, Layer
from vms.services import layers_merge_pending

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]

FINISHED = ("succeeded", "failed", "skipped")


class Client:
    """An API client of one user, on its own connections to the live server."""

    def __init__(self, base: str, user):
        self.base, self.token = base, token_create(user=user, name="load")[1]
        self.answers: list[tuple[str, int, float]] = []  # (action, status, seconds)

    def call(self, action: str, method: str, path: str, body=None) -> tuple[int, dict]:
        request = urllib.request.Request(  # noqa: S310 (our own live server)
            f"{self.base}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        self.answers.append((action, status, time.monotonic() - started))
        return status, json.loads(raw) if raw else {}

    def act(self, action: str, method: str, path: str, body=None) -> dict:
        """Ask for an operation and wait for its end; returns the operation as the API shows it."""
        status, operation = self.call(action, method, path, body)
        assert status == 202, (action, status, operation)
        deadline = time.monotonic() + 300
        while operation["state"] not in FINISHED:
            assert time.monotonic() < deadline, f"{action} did not finish: {operation}"
            time.sleep(0.3)
            operation = self.call("read", "GET", f"/api/operations/{operation['id']}/")[1]
        assert operation["state"] == "succeeded", (action, operation)
        return operation


@pytest.fixture
def roomy(alice, bob):
    plan = Plan.objects.create(
        slug="roomy", name="Roomy", max_snapshots=100, max_snapshot_bytes=10**15, max_vms=100
    )
    for user in (alice, bob):
        plan_change(user=user, plan=plan)


@pytest.fixture(autouse=True)
def no_throttle(settings):
    settings.API_MUTATION_RATE = "100000/min"


def booted_vm(client: Client, name: str) -> VM:
    created = client.act("create", "POST", "/api/vms/", {"name": name, "image": "busybox"})
    vm = VM.objects.select_related("host").get(pk=created["vm"])
    guest.wait_for_boot(vm, timeout=180)
    guest.run(vm, f"echo kept-{name} > /root/marker; sync", timeout=60)
    return vm


def test_a_snapshot_taken_while_a_deleted_ones_merge_runs_is_accepted_and_the_merge_finishes_later(
    live_server, transactional_db, alice, roomy, image, tmp_path
):
    held = Worker(FAILPOINTS="housekeeping.begun", FAILPOINT_DIR=str(tmp_path))
    try:
        client = Client(live_server.url, alice)
        vm = booted_vm(client, "box")
        first = client.act("take", "POST", f"/api/vms/{vm.pk}/snapshots/", {"name": "first"})
        depth = Layer.objects.get(pk=VM.objects.get(pk=vm.pk).active_layer_id).depth

        client.act("delete", "DELETE", f"/api/snapshots/{first['snapshot']}/")
        wait_for(
            lambda: (tmp_path / "housekeeping.begun").exists(), timeout=60, what="the merge"
        )  # the merge of the deleted snapshot's layer runs, held at its start
        merging = Operation.objects.get(kind="vm.merge")
        assert merging.state == OperationState.RUNNING

        second = client.act("take", "POST", f"/api/vms/{vm.pk}/snapshots/", {"name": "second"})
        assert second["state"] == "succeeded"
        merging.refresh_from_db()
        assert merging.state == OperationState.SKIPPED  # it gave way
    finally:
        held.stop()

    plain = Worker()
    try:
        layers_merge_pending()  # what the periodic sweep does
        wait_for(
            lambda: not Operation.objects.active().exists(), timeout=120, what="the next merge"
        )
        marker = guest.run(vm, "cat /root/marker")  # console input goes through a worker
    finally:
        plain.stop()
    assert Operation.objects.filter(kind="vm.merge", state=OperationState.SUCCEEDED).exists()
    vm.refresh_from_db()
    # A second snapshot taken, the first deleted and merged away: the chain is as deep as it
    # was with the first alone.
    assert Layer.objects.get(pk=vm.active_layer_id).depth == depth
    assert not [layer for layer in layers.layers_awaiting_merge() if layer.host_id == vm.host_id]
    assert "kept-box" in marker


def test_four_guests_cycling_take_restore_delete_in_parallel_are_never_refused(
    live_server, transactional_db, alice, bob, roomy, image
):
    worker = Worker()
    clients = {"alice": Client(live_server.url, alice), "bob": Client(live_server.url, bob)}
    try:
        vms = {}
        for owner, client in clients.items():
            for n in (1, 2):
                vms[f"{owner}-{n}"] = (client, booted_vm(client, f"{owner}-{n}"))
        reader = Client(live_server.url, alice)
        done = threading.Event()
        failures = []

        def cycle(name):
            client, vm = vms[name]
            try:
                for round_number in range(3):
                    path = f"/api/vms/{vm.pk}/snapshots/"
                    taken = client.act("take", "POST", path, {"name": f"round {round_number}"})
                    client.act("restore", "POST", f"/api/snapshots/{taken['snapshot']}/restore/")
                    client.act("delete", "DELETE", f"/api/snapshots/{taken['snapshot']}/")
                    listed = client.call("read", "GET", f"/api/snapshots/?vm={vm.pk}")[1]
                    for snapshot in listed["results"]:
                        if snapshot["kind"] == "before_restore":
                            client.act("delete", "DELETE", f"/api/snapshots/{snapshot['id']}/")
            except AssertionError as exc:
                failures.append(f"{name}: {exc}")

        def read():
            while not done.is_set():
                for path in ("/api/vms/", "/api/snapshots/", "/api/operations/"):
                    reader.call("list", "GET", path)

        threads = [threading.Thread(target=cycle, args=(name,)) for name in vms]
        watcher = threading.Thread(target=read)
        watcher.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        watcher.join()
        markers = {}
        for name, (_client, vm) in vms.items():
            vm.refresh_from_db()
            markers[name] = guest.run(vm, "cat /root/marker", timeout=60)
    finally:
        worker.stop()

    answers = [a for client in [*clients.values(), reader] for a in client.answers]
    for action in ("take", "restore", "delete", "list"):
        times = sorted(seconds for name, _, seconds in answers if name == action)
        if times:
            print(
                f"{action}: {len(times)} requests, p50 {statistics.median(times) * 1000:.0f} ms, "
                f"p95 {times[int(0.95 * (len(times) - 1))] * 1000:.0f} ms"
            )
    gave_way = Operation.objects.filter(kind="vm.merge", state=OperationState.SKIPPED).count()
    print(f"merges: {Operation.objects.filter(kind='vm.merge').count()}, gave way: {gave_way}")
    assert not failures, failures
    assert not [a for a in answers if a[1] >= 500], "a 5xx answer"
    assert not [a for a in answers if a[1] >= 400], [a for a in answers if a[1] >= 400]
    failed = Operation.objects.filter(state=OperationState.FAILED)
    assert not failed.exists(), [(o.kind, o.target_name, o.error) for o in failed]
    for name in vms:
        assert f"kept-{name}" in markers[name]
