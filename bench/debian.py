"""Real development VMs: a Debian guest from the request to SSH answering, a new VM from a
snapshot of it to SSH answering (beside a busybox boot to its console, in the same run), and the
pause a take gives the guest with its file systems frozen by the agent and without."""

from __future__ import annotations

import socket
import time
from statistics import median

from bench.guests import Lab, _ok

# The guest's own clock, every 10 ms, in Debian's shell (no usleep there).
PAUSE_LOOP = (
    "(while :; do read up idle < /proc/uptime; echo $up; sleep 0.01; done) > /tmp/ticks & "
    "echo $! > /tmp/ticker"
)
MAX_GAP = (
    "kill $(cat /tmp/ticker); "
    "awk 'NR>1 {d=$1-p; if (d>m) m=d} {p=$1} END {printf \"%d\\n\", m*1000}' /tmp/ticks"
)


def _ssh_answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2) as conn:
            conn.settimeout(3)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _until_ssh(vm, started: float, timeout: float = 600) -> float:
    from django.conf import settings

    vm.refresh_from_db()
    gateway = str(settings.GUEST_SUBNET.network_address + 1)
    while not _ssh_answers(gateway, vm.ssh_port):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{vm.name}: SSH did not answer in {timeout} s")
        time.sleep(0.25)
    return time.monotonic() - started


def debian_guests(lab: Lab, repeats: int = 2) -> dict:
    from django.conf import settings
    from django.test.utils import override_settings

    from snapshots.models import Snapshot
    from snapshots.services import snapshot_new_vm, snapshot_take
    from vms.image_upload import DEBIAN_SLUG, image_build_debian
    from vms.models import VM, Image, vm_id_of_lock
    from vms.publishing import publish_withdraw_all
    from vms.services import vm_create

    print("  Debian guests...", flush=True)
    image = Image.objects.filter(slug=DEBIAN_SLUG).first()
    if image is None:
        started = time.monotonic()
        image = image_build_debian(host=lab.host)
        print(f"    built the Debian image in {time.monotonic() - started:.0f} s", flush=True)
    ports = settings.SSH_PORTS or "45000-45099"
    result: dict = {"boot_to_ssh_s": [], "clone_to_ssh_s": [], "busybox_boot_s": []}
    with override_settings(SSH_PORTS=ports):
        try:
            for i in range(repeats):
                started = time.monotonic()
                lab.vm(f"busybox-{i}")
                result["busybox_boot_s"].append(time.monotonic() - started)

                VM.objects.filter(owner=lab.user, name=f"debian-{i}").delete()
                started = time.monotonic()
                operation = _ok(
                    vm_create(owner=lab.user, name=f"debian-{i}", image=image, memory_mib=1024)
                )
                vm = VM.objects.select_related("host").get(pk=vm_id_of_lock(operation.lock))
                result["boot_to_ssh_s"].append(_until_ssh(vm, started))

                taken = _ok(snapshot_take(vm=vm, user=lab.user, name=f"debian-{i}"))
                snapshot = Snapshot.objects.get(pk=taken.subject_pk)
                started = time.monotonic()
                made = _ok(snapshot_new_vm(snapshot=snapshot, user=lab.user, name=f"clone-{i}"))
                clone = VM.objects.select_related("host").get(pk=vm_id_of_lock(made.lock))
                result["clone_to_ssh_s"].append(_until_ssh(clone, started))
                lab.delete(clone)
                if i == repeats - 1:
                    result.update(_pauses(lab, vm))
                lab.delete(vm)
        finally:
            publish_withdraw_all()
    return {
        **result,
        "boot_to_ssh_median_s": median(result["boot_to_ssh_s"]),
        "clone_to_ssh_median_s": median(result["clone_to_ssh_s"]),
        "busybox_boot_median_s": median(result["busybox_boot_s"]),
    }


def _pauses(lab: Lab, vm, repeats: int = 3) -> dict:
    """The largest gap a 10 ms loop in the guest sees over 4 s with a take in the middle: file
    systems frozen by the agent, then with the agent stopped (crash-consistent)."""
    from snapshots.models import Snapshot
    from snapshots.services import snapshot_take

    def window(name: str) -> tuple[int, bool]:
        lab.run(vm, PAUSE_LOOP)
        time.sleep(2)
        taken = _ok(snapshot_take(vm=vm, user=lab.user, name=name))
        time.sleep(2)
        gap = int(lab.run(vm, MAX_GAP).split()[0])  # bash adds the job's end after it
        return gap, Snapshot.objects.get(pk=taken.subject_pk).quiesced

    frozen, plain = [], []
    for i in range(repeats):
        gap, quiesced = window(f"frozen-{i}")
        frozen.append(gap if quiesced else None)
    lab.run(vm, "systemctl stop qemu-guest-agent")
    deadline = time.monotonic() + 60
    while vm.host.hypervisor.domain_agent_connected(vm.domain_uuid):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for i in range(repeats):
        gap, quiesced = window(f"plain-{i}")
        plain.append(gap if not quiesced else None)
    lab.run(vm, "systemctl start qemu-guest-agent")
    measured = [g for g in frozen if g is not None]
    return {
        "pause_frozen_ms": median(measured) if measured else None,
        "pause_plain_ms": median([g for g in plain if g is not None] or [0]),
        "pause_samples": {"frozen": frozen, "plain": plain},
    }
