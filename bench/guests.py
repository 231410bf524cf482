"""Benchmarks on real guests: snapshot operations against their baselines, the guest's pause
during a take, and the storage that snapshots take.

The operations run in this process with the worker's own code (the queue's latency is measured
on its own, in bench/queue.py), from the service call to the operation's end.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import median

GIB = 1024**3


def _ok(operation):
    operation.refresh_from_db()
    if operation.state != "succeeded":
        raise SystemExit(f"{operation.kind} failed: {operation.error} {operation.detail}")
    return operation


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


class Lab:
    """A host, the image, and a user whose plan does not get in the way."""

    def __init__(self):
        from django_q.conf import Conf

        from accounts.models import Plan, User
        from vms.image_upload import image_build_busybox
        from vms.models import VM, Image
        from vms.services import host_ensure_default

        Conf.SYNC = True
        self.host = host_ensure_default()
        # Built again when the one kept cannot be forked (made before its guests could take a
        # new identity while running).
        self.image = Image.objects.filter(slug="busybox", is_public=True, live_identity=True)
        self.image = self.image.first()
        if self.image is None:
            self.image = image_build_busybox(host=self.host)
        plan, _ = Plan.objects.update_or_create(
            slug="bench",
            defaults={
                "name": "Bench",
                "max_snapshots": 100_000,
                "max_snapshot_bytes": 10**18,
                "max_vms": 100_000,
            },
        )
        self.user, _ = User.objects.update_or_create(username="bench", defaults={"plan": plan})
        for leftover in VM.objects.filter(owner=self.user):
            self.host.hypervisor.domain_undefine(leftover.domain_uuid)

    def vm(self, name: str, disk_gib: int = 4):
        from vms.models import VM, vm_id_of_lock
        from vms.services import vm_create

        VM.objects.filter(owner=self.user, name=name).update(name=f"{name}-old-{time.time_ns()}")
        operation = _ok(vm_create(owner=self.user, name=name, image=self.image, disk_gib=disk_gib))
        vm = VM.objects.select_related("host", "image", "active_layer").get(
            pk=vm_id_of_lock(operation.lock)
        )
        self.wait_for_boot(vm)
        return vm

    def wait_for_boot(self, vm, boots: int = 1, timeout: float = 120):
        from vms import image_build
        from vms.services import console_read

        deadline = time.monotonic() + timeout
        while console_read(vm=vm, max_bytes=10**7).count(image_build.READY_LINE) < boots:
            if time.monotonic() > deadline:
                raise SystemExit(f"{vm.name} did not boot")
            time.sleep(0.3)
        time.sleep(1)

    def run(self, vm, command: str, timeout: float = 600) -> str:
        """Run a shell command in the guest (through its console) and return its output."""
        from vms.services import console_read

        marker = f"{time.time_ns()}"
        vm.host.hypervisor.console_send(
            vm.domain_uuid,
            f'echo @B""{marker}@; {command}; echo @E""{marker}@\n'.encode(),
        )
        begin, end = f"@B{marker}@\n", f"@E{marker}@"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = console_read(vm=vm, max_bytes=10**6)
            start = text.rfind(begin)
            if start != -1 and end in text[start:]:
                return text[start + len(begin) : text.index(end, start)].strip()
            time.sleep(0.3)
        raise SystemExit(f"No answer from {vm.name} to {command!r}")

    def delete(self, vm) -> None:
        from vms.services import vm_delete

        vm.refresh_from_db()
        _ok(vm_delete(vm=vm, user=self.user))


def fill_disk(vm, data_gib: int) -> None:
    """Put `data_gib` GiB of written data in the VM's disk, written from the host while the
    guest is off: the same bytes a guest would leave in its layer, at disk speed."""
    from vms import layers
    from vms.services import vm_start, vm_stop

    _ok(vm_stop(vm=vm, user=vm.owner, force=True))
    vm.refresh_from_db()
    writes = []
    for gib in range(data_gib):  # qemu-io writes at most 2 GiB per command
        writes += ["-c", f"write -P 0xab {gib}G 1G"]
    path = layers.layer_path(vm.active_layer)
    subprocess.run(["qemu-io", "-f", "qcow2", *writes, path], check=True, capture_output=True)
    _ok(vm_start(vm=vm, user=vm.owner))


def virsh_take(vm, workdir: Path) -> float:
    """The plain libvirt call on the same running guest: an external disk-only snapshot."""
    from vms import hypervisor

    top = workdir / f"virsh-{time.monotonic_ns()}.qcow2"
    argv = [
        "virsh", "-q", "-c", vm.host.libvirt_uri, "snapshot-create-as",
        hypervisor.domain_name(vm.domain_uuid), "--disk-only", "--atomic", "--no-metadata",
        "--diskspec", f"vda,snapshot=external,file={top}",
    ]  # fmt: skip
    seconds, _ = _timed(lambda: subprocess.run(argv, check=True, capture_output=True))
    return seconds


def full_copy(path: str, workdir: Path) -> tuple[float, int]:
    """A full `qemu-img convert` copy of a disk chain: seconds, and bytes it took."""
    target = workdir / f"copy-{time.monotonic_ns()}.qcow2"
    seconds, _ = _timed(
        lambda: subprocess.run(
            ["qemu-img", "convert", "-U", "-O", "qcow2", path, str(target)], check=True
        )
    )
    size = target.stat().st_blocks * 512
    target.unlink()
    return seconds, size


def snapshot_operations(lab: Lab, sizes=(1, 4, 8), repeats: int = 5) -> dict:
    from snapshots.models import Snapshot
    from snapshots.services import snapshot_delete, snapshot_new_vm, snapshot_restore, snapshot_take
    from vms import layers
    from vms.models import VM, vm_id_of_lock

    results = {}
    for data_gib in sizes:
        print(f"  snapshot operations with {data_gib} GiB written...", flush=True)
        vm = lab.vm(f"ops-{data_gib}g", disk_gib=data_gib + 4)
        fill_disk(vm, data_gib)
        vm.refresh_from_db()
        times = {"take": [], "restore": [], "new_vm": [], "virsh": [], "copy": []}
        with tempfile.TemporaryDirectory(dir=lab.host.pool_path + "/..", prefix="bench-") as tmp:
            workdir = Path(tmp)
            workdir.chmod(0o755)  # QEMU runs as another user and must reach files in it
            for i in range(repeats):
                seconds, operation = _timed(
                    lambda i=i, vm=vm: _ok(snapshot_take(vm=vm, user=lab.user, name=f"t{i}"))
                )
                times["take"].append(seconds)
                snapshot = Snapshot.objects.get(pk=operation.result["snapshot"])
                vm.refresh_from_db()
                seconds, _ = _timed(
                    lambda s=snapshot: _ok(snapshot_restore(snapshot=s, user=lab.user))
                )
                times["restore"].append(seconds)
                name = f"c{data_gib}-{i}"
                seconds, operation = _timed(
                    lambda s=snapshot, name=name: _ok(
                        snapshot_new_vm(snapshot=s, user=lab.user, name=name)
                    )
                )
                times["new_vm"].append(seconds)
                lab.delete(VM.objects.get(pk=vm_id_of_lock(operation.lock)))
                for extra in Snapshot.objects.filter(source_vm=vm):
                    _ok(snapshot_delete(snapshot=extra, user=lab.user))
                vm.refresh_from_db()
            vm.refresh_from_db()
            chain_top = layers.layer_path(vm.active_layer)
            for _ in range(repeats):
                times["copy"].append(full_copy(chain_top, workdir)[0])
            # Last, as it leaves files libvirt does not track (the VM goes right after).
            for _ in range(repeats):
                times["virsh"].append(virsh_take(vm, workdir))
            lab.delete(vm)
        results[data_gib] = {key: median(values) for key, values in times.items()}
        results[data_gib]["samples"] = times
    return results


PAUSE_LOOP = (
    "(while :; do read up idle < /proc/uptime; echo $up; usleep 10000; done) > /tmp/ticks & "
    "echo $! > /tmp/ticker"
)
MAX_GAP = (
    "kill $(cat /tmp/ticker); "
    "awk 'NR>1 {d=$1-p; if (d>m) m=d} {p=$1} END {printf \"%d\\n\", m*1000}' /tmp/ticks"
)


def guest_pause(lab: Lab, repeats: int = 5) -> dict:
    """The largest gap a guest sees in a loop stamping the time every 10 ms, over 4 s windows:
    with a take in the middle, and without (the baseline: the loop's own jitter)."""
    from snapshots.services import snapshot_take

    print("  guest pause during take...", flush=True)
    vm = lab.vm("pause")
    with_take, without = [], []
    for i in range(repeats):
        lab.run(vm, PAUSE_LOOP)
        time.sleep(4)
        without.append(int(lab.run(vm, MAX_GAP)))
        lab.run(vm, PAUSE_LOOP)
        time.sleep(2)
        _ok(snapshot_take(vm=vm, user=lab.user, name=f"pause-{i}"))
        time.sleep(2)
        with_take.append(int(lab.run(vm, MAX_GAP)))
    lab.delete(vm)
    return {
        "take_max_gap_ms": median(with_take),
        "idle_max_gap_ms": median(without),
        "samples": {"take": with_take, "idle": without},
    }


def storage_cost(lab: Lab, rounds: int = 10, mib: int = 100) -> dict:
    """Bytes on disk for `rounds` snapshots of a guest that writes `mib` MiB between them,
    against a full copy of the disk at each of those moments."""
    from snapshots.models import Snapshot
    from snapshots.services import snapshot_take
    from vms import layers

    print("  storage of 10 snapshots...", flush=True)
    vm = lab.vm("storage", disk_gib=4)
    copies = 0
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        for i in range(rounds):
            # Random bytes: zeros would be skipped by qemu-img convert and flatter the baseline.
            lab.run(vm, f"dd if=/dev/urandom of=/root/data{i} bs=1M count={mib} 2>/dev/null; sync")
            vm.refresh_from_db()
            copies += full_copy(layers.layer_path(vm.active_layer), Path(tmp))[1]
            _ok(snapshot_take(vm=vm, user=lab.user, name=f"round {i}"))
            vm.refresh_from_db()
    snapshot_bytes = sum(s.size_bytes for s in Snapshot.objects.filter(source_vm=vm))
    base = lab.image.layer.allocation
    lab.delete(vm)
    return {
        "rounds": rounds,
        "written_mib": rounds * mib,
        "snapshot_layers_bytes": snapshot_bytes,
        "image_bytes": base,
        "full_copies_bytes": copies,
    }
