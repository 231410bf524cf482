"""Benchmark: take, restore and new-VM-from-snapshot against plain virsh and a full copy.

For guests with about 1 GiB and about 8 GiB of data written to their disk, it measures, side by
side in one run (median of N repetitions):

- take:     our snapshot operation on the running guest, from the service call to the end of the
            operation, against `virsh snapshot-create-as --disk-only --atomic --no-metadata` on
            the same running guest;
- restore:  our restore (undo snapshot, new layer, domain redefined and started again);
- new VM:   a new VM from the snapshot (new layer, new domain, booted);
- baseline: a full `qemu-img convert -O qcow2` copy of the same disk, which is what restore and
            new VM would cost without copy-on-write layers.

Run it with `bin/bench snapshots` (the worker's code runs in this process, so the figures are
the operations themselves; queue latency is measured separately). Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koding_snapshots.settings")
os.environ.setdefault("DATA_DIR", str(ROOT / "var" / "bench"))
os.environ.setdefault("STORAGE_POOL", "koding-snapshots-bench")
os.environ.setdefault("QUEUE_NAME", "koding-snapshots-bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django_q.conf import Conf  # noqa: E402

from accounts.models import User  # noqa: E402
from snapshots.models import Plan, Snapshot  # noqa: E402
from snapshots.services import snapshot_delete, snapshot_new_vm, snapshot_restore, snapshot_take  # noqa: E402
from vms import hypervisor, storage  # noqa: E402
from vms.images import image_build_busybox  # noqa: E402
from vms.models import VM, Image  # noqa: E402
from vms.services import host_ensure_default, vm_create, vm_delete, vm_start, vm_stop  # noqa: E402

GIB = 1024**3


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def ok(operation):
    operation.refresh_from_db()
    if operation.state != "succeeded":
        raise SystemExit(f"{operation.kind} failed: {operation.error}")
    return operation


def prepare(user, image, name: str, data_gib: int) -> VM:
    """A running guest whose disk holds `data_gib` GiB of written data."""
    vm = VM.objects.get(
        pk=ok(vm_create(owner=user, name=name, image=image, disk_gib=data_gib + 4)).vm_id
    )
    ok(vm_stop(vm=vm, user=user, force=True))
    vm.refresh_from_db()
    path = storage.layer_path(vm.active_layer)
    # Written from the host while the guest is off: the same bytes a guest would leave in its
    # disk layer, at disk speed instead of emulated-CPU speed.
    writes = []
    for gib in range(data_gib):  # qemu-io writes at most 2 GiB per command
        writes += ["-c", f"write -P 0xab {gib}G 1G"]
    subprocess.run(["qemu-io", "-f", "qcow2", *writes, path], check=True, capture_output=True)
    vm.refresh_from_db()
    ok(vm_start(vm=vm, user=user))
    time.sleep(6)  # let it boot; the operations below do not wait for the guest
    return VM.objects.select_related("host", "active_layer").get(pk=vm.pk)


def virsh_take(vm: VM, workdir: Path) -> float:
    """The plain libvirt call: an external disk-only snapshot of the running guest."""
    top = workdir / f"virsh-{time.monotonic_ns()}.qcow2"
    argv = [
        "virsh",
        "-q",
        "-c",
        vm.host.libvirt_uri,
        "snapshot-create-as",
        hypervisor.domain_name(vm.domain_uuid),
        "--disk-only",
        "--atomic",
        "--no-metadata",
        "--diskspec",
        f"vda,snapshot=external,file={top}",
    ]
    seconds, _ = timed(lambda: subprocess.run(argv, check=True, capture_output=True))
    return seconds


def full_copy(vm: VM, workdir: Path) -> float:
    source = storage.layer_path(vm.active_layer)
    target = workdir / f"copy-{time.monotonic_ns()}.qcow2"
    seconds, _ = timed(
        lambda: subprocess.run(
            ["qemu-img", "convert", "-U", "-O", "qcow2", source, str(target)], check=True
        )
    )
    target.unlink()
    return seconds


def measure(user, image, data_gib: int, repeats: int) -> dict:
    vm = prepare(user, image, f"bench-{data_gib}g", data_gib)
    takes, restores, new_vms, virsh, copies = [], [], [], [], []
    with tempfile.TemporaryDirectory(dir=vm.host.pool_path + "/..", prefix="bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # QEMU runs as another user and must reach the files in it
        for i in range(repeats):
            seconds, operation = timed(
                lambda i=i: ok(snapshot_take(vm=vm, user=user, name=f"t{i}"))
            )
            takes.append(seconds)
            snapshot = Snapshot.objects.get(pk=operation.result["snapshot"])
            vm.refresh_from_db()
            seconds, _ = timed(lambda s=snapshot: ok(snapshot_restore(snapshot=s, user=user)))
            restores.append(seconds)
            seconds, operation = timed(
                lambda s=snapshot, i=i: ok(
                    snapshot_new_vm(snapshot=s, user=user, name=f"c{data_gib}-{i}")
                )
            )
            new_vms.append(seconds)
            clone = VM.objects.get(pk=operation.vm_id)
            ok(vm_delete(vm=clone, user=user))
            for extra in Snapshot.objects.filter(source_vm=vm):
                ok(snapshot_delete(snapshot=extra, user=user))
            vm.refresh_from_db()
        # The plain virsh call works on the same running guest, after ours (it leaves files
        # libvirt does not track, so it goes last, and the VM is deleted afterwards).
        vm.refresh_from_db()
        for _ in range(repeats):
            copies.append(full_copy(vm, workdir))
        for _ in range(repeats):
            virsh.append(virsh_take(vm, workdir))
        ok(vm_delete(vm=vm, user=user))
    return {
        "take": statistics.median(takes),
        "restore": statistics.median(restores),
        "new_vm": statistics.median(new_vms),
        "virsh": statistics.median(virsh),
        "copy": statistics.median(copies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="1,8", help="GiB of written data, comma-separated")
    args = parser.parse_args()

    Conf.SYNC = True  # run each operation in this process, start to end
    call_command("migrate", verbosity=0)
    host = host_ensure_default()
    image = Image.objects.filter(slug="busybox", is_public=True).first() or image_build_busybox(
        host=host
    )
    plan, _ = Plan.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench",
            "max_snapshots": 1000,
            "max_snapshot_bytes": 10**15,
            "max_vms": 100,
        },
    )
    user, _ = User.objects.get_or_create(username="bench", defaults={"plan": plan})
    for leftover in VM.objects.filter(owner=user):
        hypervisor.domain_undefine(host.libvirt_uri, leftover.domain_uuid)
    VM.objects.filter(owner=user).delete()

    sizes = [int(s) for s in args.sizes.split(",")]
    results = {size: measure(user, image, size, args.repeats) for size in sizes}

    print(f"\nSnapshot operations, median of {args.repeats} (seconds)")
    columns = ("written", "take", "virsh", "take/virsh", "restore", "new VM", "full copy")
    print(" ".join(f"{c:>10}" for c in columns))
    for size, r in results.items():
        ratio = r["take"] / r["virsh"]
        values = (r["take"], r["virsh"], ratio, r["restore"], r["new_vm"], r["copy"])
        print(f"{size:>7}GiB " + " ".join(f"{v:10.3f}" for v in values))
    if len(sizes) >= 2:
        small, big = results[sizes[0]], results[sizes[-1]]
        print(f"\nFlatness, {sizes[-1]} GiB against {sizes[0]} GiB (goal: at most 1.2):")
        for key in ("take", "restore", "new_vm", "virsh", "copy"):
            print(f"  {key:<8} {big[key] / small[key]:.2f}x")


if __name__ == "__main__":
    main()
