"""Chains that stay short: 500 hourly scheduled snapshots of one VM with retention (keep-hourly
24, keep-daily 7, keep-weekly 4), with the layers of pruned snapshots merged away (what the
service does), beside the same 500 runs without merging (the baseline: pruning only frees a
layer nothing builds on, so the chain grows by one layer an hour).

The VM is real and off: between two runs 1 MiB is written into its disk from the host at a
changing place of a 40 MiB working set (`qemu-io`, the bytes a guest rewriting its files would
leave), then the policy's run for that hour
prunes and takes through the service, and the schedule's merge sweep runs. The clock is given.
Printed every 50 runs: the VM's chain depth (as the files say, following backing paths), the
layers and disk space the VM's snapshots and disk use, and the seconds a run took.

    .venv/bin/python -m bench.chains [--snapshots 500]

It measures and prints; it passes or fails on nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START = datetime(2026, 1, 5, 0, 30, tzinfo=UTC)
KEEP = {"keep_hourly": 24, "keep_daily": 7, "keep_weekly": 4}
MIB = 1024**2
WORKING_SET_MIB = 40


def chain_depth(host, volume_name: str) -> int:
    """Layers in the chain, read from the files (each one's backing path), not the database."""

    depth, name = 0, volume_name
    while name:
        depth += 1
        backing = host.hypervisor.volume_info(host.pool_name, name).backing_path
        name = Path(backing).name if backing else None
    return depth


def disk_used(vm) -> tuple[int, int]:
    """Layers under the VM's disk and its snapshots, but the image's, and the bytes they take."""
    from snapshots.models import Snapshot
    from vms.models import Layer

    tops = [
        vm.active_layer_id,
        *Snapshot.objects.filter(source_vm=vm).values_list("layer_id", flat=True),
    ]
    seen, frontier = set(), {pk for pk in tops if pk}
    while frontier:
        seen |= frontier
        parents = Layer.objects.filter(pk__in=frontier).values_list("parent_id", flat=True)
        frontier = {pk for pk in parents if pk} - seen
    seen.discard(vm.image.layer_id)
    host = vm.host
    used = sum(
        host.hypervisor.volume_info(host.pool_name, layer.volume_name).allocation
        for layer in Layer.objects.filter(pk__in=seen)
    )
    return len(seen), used


def write_into(vm, hour: int) -> None:
    import subprocess

    from vms import layers

    offset = (hour * 7 % WORKING_SET_MIB) * MIB  # a changing place in a working set: rewritten
    command = f"write -P {hour % 250 + 1} {offset} {MIB}"
    path = layers.layer_path(vm.active_layer)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path], check=True, capture_output=True)


def scheduled_snapshots(lab, snapshots: int, *, merging: bool) -> list[dict]:
    from bench.guests import _ok
    from schedules.models import SnapshotPolicy
    from schedules.services import policies_run_due, policy_set
    from snapshots.models import Snapshot
    from vms.services import layers_merge_pending, vm_stop

    label = "with merging" if merging else "without merging (baseline)"
    print(f"  {snapshots} hourly snapshots, {label}...", flush=True)
    vm = lab.vm(f"chains-{'merge' if merging else 'keep'}", disk_gib=1)
    _ok(vm_stop(vm=vm, user=vm.owner, force=True))
    SnapshotPolicy.objects.filter(owner=vm.owner).exclude(vm=vm).delete()  # an earlier run's
    policy_set(vm=vm, enabled=True, schedule="hourly", timezone_name="UTC", now=START, **KEEP)
    rows, seconds = [], 0.0
    # The baseline: the delete's own sweep merges nothing, and the schedule's sweep does not run.
    never = mock.patch("snapshots.jobs.layers_merge_pending", list)
    with contextlib.nullcontext() if merging else never:
        for hour in range(1, snapshots + 1):
            vm.refresh_from_db()
            write_into(vm, hour)
            began = time.perf_counter()
            try:
                runs = policies_run_due(now=START + timedelta(hours=hour, seconds=1))
                (run,) = [r for r in runs if r.policy.vm_id == vm.pk]
                run.operation.refresh_from_db()
                if run.operation.state != "succeeded":
                    raise RuntimeError(run.operation.error)
            except Exception as exc:  # the baseline's end is a finding
                rows.append({"snapshots": hour, "refused": str(exc)[:200]})
                print(f"    run {hour} failed: {str(exc)[:200]}", flush=True)
                break
            if merging:
                layers_merge_pending()
            seconds += time.perf_counter() - began
            if hour % 50 == 0 or hour == snapshots:
                vm.refresh_from_db()
                count, used = disk_used(vm)
                row = {
                    "snapshots": hour,
                    "kept": Snapshot.objects.filter(source_vm=vm).count(),
                    "depth": chain_depth(vm.host, vm.active_layer.volume_name),
                    "layers": count,
                    "bytes": used,
                    "seconds_per_run": seconds / 50 if hour % 50 == 0 else None,
                }
                seconds = 0.0
                rows.append(row)
                print(
                    f"    after {hour:3d}: {row['kept']:3d} kept, chain depth {row['depth']:3d}, "
                    f"{count:3d} layers, {used / MIB:7.1f} MiB",
                    flush=True,
                )
    rows.append({"starts": _starts(vm)})
    lab.delete(vm)
    return rows


def _starts(vm) -> str:
    """Whether the VM still boots on the chain it was left with: "yes", or libvirt's refusal."""
    from vms.services import vm_start

    operation = vm_start(vm=vm, user=vm.owner)
    operation.refresh_from_db()
    answer = "yes" if operation.state == "succeeded" else operation.error[:200]
    print(f"    the VM starts: {answer}", flush=True)
    return answer


def chain_retention(lab, snapshots: int = 500) -> dict:
    return {
        "snapshots": snapshots,
        "keep": KEEP,
        "merging": scheduled_snapshots(lab, snapshots, merging=True),
        "baseline": scheduled_snapshots(lab, snapshots, merging=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=500)
    args = parser.parse_args()
    from bench.common import setup_django

    setup_django()
    from bench import guests

    result = chain_retention(guests.Lab(), args.snapshots)
    print()
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [
        "## Chains under scheduled snapshots",
        "",
        f"{result['snapshots']} hourly snapshots of one VM (1 MiB of a {WORKING_SET_MIB} MiB "
        "working set rewritten between two), retention "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in result["keep"].items())
        + ". Depth: layers in the VM's disk chain, image included, read from the files.",
        "",
        "| snapshots | kept | depth, merged | depth, baseline | MiB, merged | MiB, baseline |",
        "|---|---|---|---|---|---|",
    ]
    baseline = {row["snapshots"]: row for row in result["baseline"] if "snapshots" in row}
    for row in result["merging"]:
        if "refused" in row or "starts" in row:
            continue
        base = baseline.get(row["snapshots"], {})
        lines.append(
            f"| {row['snapshots']} | {row['kept']} | {row['depth']} | "
            f"{base.get('depth', 'refused')} | {row['bytes'] / MIB:.1f} | "
            + (f"{base['bytes'] / MIB:.1f} |" if "bytes" in base else "- |")
        )
    refused = [row for row in result["baseline"] if "refused" in row]
    if refused:
        lines += [
            "",
            f"The baseline's run {refused[0]['snapshots']} failed: {refused[0]['refused']}",
        ]
    for name in ("merging", "baseline"):
        starts = [row["starts"] for row in result[name] if "starts" in row]
        if starts:
            lines += ["", f"Does the VM start on the chain it was left with ({name})? {starts[0]}"]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
