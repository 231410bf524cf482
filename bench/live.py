"""Benchmarks of live snapshots (memory included) on a real guest, beside their baselines.

- The guest's pause during a take: a live take (memory saved while the guest runs) against a
  disk-only take, and against a window with no take at all (the loop's own jitter). Measured
  two ways: the largest gap the guest sees in a loop stamping /proc/uptime every 10 ms (as in
  `bench/guests.py`; under software emulation the guest's clock stops while it is paused, so
  this can hide a pause), the time the domain is seen paused when polled from the host, and
  for the live take the downtime libvirt reports for its memory job (`virsh domjobinfo
  --completed`): the real pause, too short for the poll to catch.
- Restore until the guest answers on its console: a live restore (resumes, no boot) against a
  disk-only restore (which must boot) and against `virsh snapshot-revert` of an internal
  snapshot (memory and disk, inside the qcow2 file) of the same guest.
"""

from __future__ import annotations

import subprocess
import threading
import time

from bench.common import median
from bench.guests import MAX_GAP, PAUSE_LOOP, Lab, _ok, _timed


def _paused_seconds(vm, action) -> tuple[float, float]:
    """Run `action` while a thread polls the domain's state; returns (seconds the domain was
    seen paused, seconds `action` took)."""

    host, domain = vm.host.hypervisor, vm.domain_uuid
    done = threading.Event()
    paused = [0.0]

    def poll():
        last, since = None, 0.0
        while not done.is_set():
            state = host.domain_state(domain)
            now = time.perf_counter()
            if state == "paused" and last != "paused":
                since = now
            elif state != "paused" and last == "paused":
                paused[0] += now - since
            last = state
        if last == "paused":
            paused[0] += time.perf_counter() - since

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    seconds, _ = _timed(action)
    done.set()
    poller.join()
    return paused[0], seconds


def _downtime_ms(vm) -> int | None:
    """The downtime libvirt reports for the domain's last completed job (a memory save)."""
    from vms import hypervisor

    argv = ["virsh", "-q", "-c", vm.host.libvirt_uri, "domjobinfo", "--completed"]
    argv.append(hypervisor.domain_name(vm.domain_uuid))
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("Total downtime:"):
            return int(line.split(":", 1)[1].split()[0])
    return None


def _answer_time(lab: Lab, vm, start: float, *, boots_before: int | None = None) -> float:
    """Seconds from `start` until the guest answers a line typed on its console, typed again
    every 3 s (a line typed before the guest's shell is up is lost: a Debian guest says it is up
    a moment before its serial console has logged in)."""
    from vms import image_build
    from vms.services import console_read

    if boots_before is not None:
        while console_read(vm=vm, max_bytes=10**7).count(image_build.READY_LINE) <= boots_before:
            time.sleep(0.05)
    marker = f"{time.time_ns()}"
    line = f'echo @A""{marker}@\n'.encode()
    deadline, typed = time.monotonic() + 300, 0.0
    senders = []
    while f"@A{marker}@" not in console_read(vm=vm, max_bytes=10**5):
        if time.monotonic() > deadline:
            raise SystemExit(f"{vm.name} did not answer on its console")
        if time.monotonic() - typed > 3:
            typed = time.monotonic()
            sender = threading.Thread(
                target=vm.host.hypervisor.console_send, args=(vm.domain_uuid, line)
            )
            sender.start()
            senders.append(sender)
        time.sleep(0.02)
    answered = time.perf_counter() - start
    for sender in senders:
        sender.join()
    return answered


def _boots(vm) -> int:
    from vms import image_build
    from vms.services import console_read

    return console_read(vm=vm, max_bytes=10**7).count(image_build.READY_LINE)


def _gap_window(lab: Lab, vm, action=None) -> int:
    """The largest gap (ms) the guest's 10 ms loop saw over 4 s, `action` in the middle."""
    lab.run(vm, PAUSE_LOOP)
    time.sleep(2)
    if action:
        action()
    time.sleep(2)
    return int(lab.run(vm, MAX_GAP))


def _virsh(vm, *args: str) -> None:
    from vms import hypervisor

    argv = ["virsh", "-q", "-c", vm.host.libvirt_uri, *args]
    argv.insert(5, hypervisor.domain_name(vm.domain_uuid))
    subprocess.run(argv, check=True, capture_output=True)


def live_snapshots(lab: Lab, repeats: int = 5) -> dict:
    from snapshots.models import Snapshot
    from snapshots.services import snapshot_delete, snapshot_restore, snapshot_take

    print("  live snapshots: pause and restore...", flush=True)
    vm = lab.vm("live")
    samples = {
        "gap_idle_ms": [],
        "gap_live_take_ms": [],
        "gap_disk_take_ms": [],
        "paused_live_take_s": [],
        "paused_disk_take_s": [],
        "downtime_live_take_ms": [],
        "live_take_s": [],
        "disk_take_s": [],
        "live_restore_answer_s": [],
        "disk_restore_answer_s": [],
        "internal_revert_answer_s": [],
        "memory_mib": [],
    }
    for i in range(repeats):
        samples["gap_idle_ms"].append(_gap_window(lab, vm))
        taken = {}

        def take(kind, memory, i=i, taken=taken):
            def action():
                op = _ok(
                    snapshot_take(vm=vm, user=lab.user, name=f"{kind}-{i}", include_memory=memory)
                )
                taken[kind] = Snapshot.objects.get(pk=op.subject_pk)

            paused, seconds = _paused_seconds(vm, action)
            samples[f"paused_{kind}_take_s"].append(paused)
            samples[f"{kind}_take_s"].append(seconds)

        samples["gap_live_take_ms"].append(_gap_window(lab, vm, lambda: take("live", True)))
        samples["downtime_live_take_ms"].append(_downtime_ms(vm) or 0)
        samples["gap_disk_take_ms"].append(_gap_window(lab, vm, lambda: take("disk", False)))
        samples["memory_mib"].append(taken["live"].memory_bytes / 1024**2)

        start = time.perf_counter()
        _ok(snapshot_restore(snapshot=taken["live"], user=lab.user))
        samples["live_restore_answer_s"].append(_answer_time(lab, vm, start))

        boots = _boots(vm)
        start = time.perf_counter()
        _ok(snapshot_restore(snapshot=taken["disk"], user=lab.user))
        samples["disk_restore_answer_s"].append(_answer_time(lab, vm, start, boots_before=boots))
        vm.refresh_from_db()
        for snapshot in Snapshot.objects.filter(source_vm=vm):
            _ok(snapshot_delete(snapshot=snapshot, user=lab.user))
        vm.refresh_from_db()

    # Last, as libvirt then holds snapshot metadata for the domain (the VM goes right after).
    _virsh(vm, "snapshot-create-as", "--name", "bench-internal")
    for _ in range(repeats):
        start = time.perf_counter()
        _virsh(vm, "snapshot-revert", "--snapshotname", "bench-internal", "--running")
        samples["internal_revert_answer_s"].append(_answer_time(lab, vm, start))
    _virsh(vm, "snapshot-delete", "--snapshotname", "bench-internal")
    lab.delete(vm)
    results = {key: median(values) for key, values in samples.items()}
    results["samples"] = samples
    return results
