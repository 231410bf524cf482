"""Scale of the data: query counts and times of the dashboard, the snapshots page and the API's
snapshot list with 10, 1,000 and 10,000 snapshots (pages of 50 and 25), and of the VM page's poll
while an operation runs on the VM: the whole card, only the progress, and nothing changed."""

from __future__ import annotations

import time

from bench.api import analyze, mac, rows_host
from bench.common import median

PAGES = {"dashboard": "/", "snapshots page": "/snapshots/", "API snapshot list": "/api/snapshots/"}


def _measure(client, url: str, repeats: int = 5) -> tuple[int, float]:
    from django.db import connection

    executed = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        assert client.get(url).status_code in (200, 204)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return len(executed), median(times)


def data_scale(sizes=(10, 1000, 10_000)) -> dict:
    from django.test import Client

    from accounts.models import Plan, User
    from snapshots.models import Snapshot, SnapshotState
    from vms.models import VM, Image, Layer, VMState

    print("  scale of the data...", flush=True)
    image = Image.objects.get(slug="busybox", is_public=True)
    host = rows_host()
    plan = Plan.objects.get(slug="bench")
    user, _ = User.objects.get_or_create(username="bench-scale", defaults={"plan": plan})
    old_layers = list(Snapshot.objects.filter(owner=user).values_list("layer_id", flat=True))
    Snapshot.objects.filter(owner=user).delete()
    VM.objects.filter(owner=user).delete()
    Layer.objects.filter(pk__in=old_layers).delete()
    client = Client()
    client.force_login(user)
    results = {}
    have = 0
    vms = []
    for size in sizes:
        wanted_vms = max(1, size // 10)
        vms += VM.objects.bulk_create(
            VM(owner=user, name=f"scale-{i:05}", host=host, image=image, disk_bytes=2**32,
               state=VMState.STOPPED, mac_address=mac(2, i))
            for i in range(len(vms), wanted_vms)
        )  # fmt: skip
        layers = Layer.objects.bulk_create(
            Layer(host=host, virtual_size=1, state="ready") for _ in range(size - have)
        )
        Snapshot.objects.bulk_create(
            Snapshot(owner=user, source_vm=vms[i % len(vms)], source_vm_name="x", image=image,
                     name=f"s{i}", layer=layers[i - have], state=SnapshotState.READY)
            for i in range(have, size)
        )  # fmt: skip
        have = size
        analyze()
        results[size] = {}
        for name, url in {**PAGES, **_polls(vms[0])}.items():
            queries, ms = _measure(client, url)
            results[size][name] = {"queries": queries, "ms": ms}
    return results


def _polls(vm) -> dict:
    """The VM page's poll while a take runs on `vm`, as the page sends it in each case."""
    from urllib.parse import urlencode

    from operations.models import Operation, OperationState
    from snapshots.models import SnapshotOperationKind
    from vms.views import _live_keys

    operation = Operation.objects.active().holding(vm.lock).first()
    if operation is None:
        operation = Operation.objects.create(
            kind=SnapshotOperationKind.TAKE, owner=vm.owner, lock=vm.lock, subject=vm,
            target_name=f"{vm.name}: bench", state=OperationState.RUNNING, progress=40,
            message="Switching the disk",
        )  # fmt: skip
    card, progress = _live_keys(vm, operation, None)
    live = f"/vms/{vm.pk}/live/"
    return {
        "VM page poll: whole card": live,
        "VM page poll: progress moved": f"{live}?{urlencode({'card': card, 'progress': ''})}",
        "VM page poll: nothing changed": (
            f"{live}?{urlencode({'card': card, 'progress': progress})}"
        ),
    }
