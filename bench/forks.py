"""Forks of a running VM (`snapshots.services.vm_fork`), beside a cold boot of the same image in
the same run:

- the source's pause during the fork: the downtime libvirt reports for the memory job of the
  fork's live snapshot, and the largest gap a 10 ms loop in the source guest sees meanwhile;
- from the request until a child answers a command on its console, for 1 child and for 10 (until
  the last of them answers), against a new VM of the same image from the request until its
  console answers (a cold boot);
- how long until each child has taken its own identity (it prints so on its console);
- each child's resident memory (its QEMU process), idle, against the guest's RAM.
"""

from __future__ import annotations

import time
from pathlib import Path
from statistics import median

from bench import debian as debian_bench
from bench import guests
from bench.guests import Lab, _ok
from bench.live import _answer_time, _downtime_ms

IDLE_SECONDS = 5


def _rss_mib(vm) -> dict:
    """The resident memory of the VM's QEMU process: all of it, and the anonymous part (the
    guest's pages it holds privately)."""
    from vms import hypervisor

    name = hypervisor.domain_name(vm.domain_uuid)
    pid = Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip()
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            status[key] = int(value.split()[0]) / 1024
    return status


def _identity_taken(vm, start: float, timeout: float = 300) -> float:
    from vms.services import console_read

    deadline = time.monotonic() + timeout
    while "as a new VM:" not in console_read(vm=vm, max_bytes=10**6):
        if time.monotonic() > deadline:
            raise SystemExit(f"{vm.name} did not take its identity")
        time.sleep(0.05)
    return time.perf_counter() - start


def _children(operation) -> list:
    from vms.models import VM

    return list(
        VM.objects.select_related("host", "image", "owner")
        .filter(pk__in=operation.params["children"])
        .order_by("name")
    )


def _cold_boot(lab: Lab, image, name: str, memory_mib: int) -> float:
    from vms.models import VM, vm_id_of_lock
    from vms.services import vm_create

    VM.objects.filter(owner=lab.user, name=name).update(name=f"{name}-old-{time.time_ns()}")
    start = time.perf_counter()
    operation = _ok(
        vm_create(owner=lab.user, name=name, image=image, memory_mib=memory_mib, disk_gib=4)
    )
    vm = VM.objects.select_related("host", "image").get(pk=vm_id_of_lock(operation.lock))
    answered = _answer_time(lab, vm, start, boots_before=0)
    lab.delete(vm)
    return answered


def _fork(lab: Lab, source, count: int) -> dict:
    from snapshots.services import vm_fork

    start = time.perf_counter()
    operation = _ok(vm_fork(vm=source, user=lab.user, count=count))
    done = time.perf_counter() - start
    downtime = _downtime_ms(source)
    children = _children(operation)
    answered = [_answer_time(lab, child, start) for child in children]
    identity = [_identity_taken(child, start) for child in children]
    time.sleep(IDLE_SECONDS)
    rss = [_rss_mib(child) for child in children]
    for child in children:
        lab.delete(child)
    return {
        "operation_s": done,
        "downtime_ms": downtime,
        "answer_s": answered,
        "identity_s": identity,
        "rss_mib": rss,
        "snapshot": str(operation.subject_pk),
    }


def _image_forks(lab: Lab, image, memory_mib: int, repeats: int, many: int) -> dict:
    from snapshots.models import Snapshot
    from snapshots.services import snapshot_delete

    label = image.slug
    print(f"    {label}: cold boots...", flush=True)
    cold = [_cold_boot(lab, image, f"cold-{label}-{i}", memory_mib) for i in range(repeats)]
    source = _source(lab, image, f"fork-{label}", memory_mib)
    print(f"    {label}: forks of 1...", flush=True)
    ones, gaps = [], []
    for _ in range(repeats):
        result = {}
        gaps.append(_gap(lab, source, lambda r=result: r.update(_fork(lab, source, 1))))
        ones.append(result)
    print(f"    {label}: a fork of {many}...", flush=True)
    lot = _fork(lab, source, many)
    for result in [*ones, lot]:
        snapshot = Snapshot.objects.filter(pk=result.pop("snapshot")).first()
        if snapshot:
            _ok(snapshot_delete(snapshot=snapshot, user=lab.user))
    source_rss = _rss_mib(source)
    lab.delete(source)
    return {
        "memory_mib": memory_mib,
        "cold_boot_answer_s": median(cold),
        "cold_boot_samples_s": cold,
        "fork_downtime_ms": median(r["downtime_ms"] or 0 for r in ones),
        "fork_gap_ms": median(gaps),
        "fork_operation_s": median(r["operation_s"] for r in ones),
        "fork_one_answer_s": median(r["answer_s"][0] for r in ones),
        "fork_one_identity_s": median(r["identity_s"][0] for r in ones),
        "fork_one_samples_s": [r["answer_s"][0] for r in ones],
        "fork_many": many,
        "fork_many_operation_s": lot["operation_s"],
        "fork_many_last_answer_s": max(lot["answer_s"]),
        "fork_many_last_identity_s": max(lot["identity_s"]),
        "child_rss_mib": median(r["VmRSS"] for r in lot["rss_mib"]),
        "child_anon_mib": median(r["RssAnon"] for r in lot["rss_mib"]),
        "source_rss_mib": source_rss["VmRSS"],
    }


def _gap(lab: Lab, vm, action) -> int:
    """The largest gap (ms) a 10 ms loop in the guest saw over 4 s, `action` in the middle."""
    on_debian = vm.image.slug != lab.image.slug
    loop = debian_bench.PAUSE_LOOP if on_debian else guests.PAUSE_LOOP
    gap = debian_bench.MAX_GAP if on_debian else guests.MAX_GAP
    lab.run(vm, loop)
    time.sleep(2)
    action()
    time.sleep(2)
    return int(lab.run(vm, gap).split()[0])


def _source(lab: Lab, image, name: str, memory_mib: int):
    from vms.models import VM, vm_id_of_lock
    from vms.services import vm_create

    VM.objects.filter(owner=lab.user, name=name).update(name=f"{name}-old-{time.time_ns()}")
    operation = _ok(
        vm_create(owner=lab.user, name=name, image=image, memory_mib=memory_mib, disk_gib=4)
    )
    vm = VM.objects.select_related("host", "image", "active_layer").get(
        pk=vm_id_of_lock(operation.lock)
    )
    _answer_time(lab, vm, time.perf_counter(), boots_before=0)  # its shell is up
    return vm


def forks(lab: Lab, repeats: int = 3, *, many: int = 10, debian: bool = True) -> dict:
    from vms.image_upload import DEBIAN_SLUG, image_build_debian
    from vms.models import Host, Image

    print("  forks of a running VM...", flush=True)
    # Room for the source and its children, idle guests, whatever vCPUs the machine has.
    vcpus = lab.host.vcpus
    Host.objects.filter(pk=lab.host.pk).update(vcpus=max(vcpus, 4 * (many + 2)))
    try:
        results = {"busybox": _image_forks(lab, lab.image, 256, repeats, many)}
        if debian:
            image = Image.objects.filter(slug=DEBIAN_SLUG, is_public=True, live_identity=True)
            image = image.first() or image_build_debian(host=lab.host)[0]
            results["debian"] = _image_forks(lab, image, 1024, min(repeats, 2), many)
    finally:
        Host.objects.filter(pk=lab.host.pk).update(vcpus=vcpus)
    return results
