"""Seeding another host: a layer streamed from one libvirtd's pool into another's through
`Hypervisor.volume_transfer` (what a VM placed on a host without its snapshot's layers waits
for), beside two baselines measured in the same run: the same stream sending every byte (no
sparse streams), and `cp --sparse=always` of the same file on this machine's disk (no libvirt,
no network: the floor).

The second host is the tests' second libvirtd (`tests/second_host.py`: an unprivileged session
daemon over qemu+tcp on 127.0.0.1, its pool folder at the same path in a mount namespace of its
own), so the stream crosses a real libvirt RPC connection, on loopback. Two files per size, each
4 GiB virtual: a qcow2 layer with the data written at its start, and a raw disk with the data
scattered in 1 MiB pieces (holes between them).

    .venv/bin/python -m bench.hosts [--repeats 3]

It measures and prints; it passes or fails on nothing. Needs root (the second daemon does).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median

MIB = 1024**2
SIZES_MIB = (64, 256, 1024)
VIRTUAL = "4G"
POOL = "ks-bench-hosts"


def _make_files(folder: Path, data_mib: int) -> dict:
    """{volume name: local file} for one size: a qcow2 layer and a scattered raw disk."""
    qcow2 = folder / f"layer-{data_mib}.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", str(qcow2), VIRTUAL],
        check=True,
    )
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {data_mib}M", str(qcow2)],
        check=True,
        capture_output=True,
    )
    raw = folder / f"disk-{data_mib}.raw"
    subprocess.run(["truncate", "-s", VIRTUAL, str(raw)], check=True)
    stride = 4096 // data_mib  # MiB between pieces
    commands = []
    for piece in range(data_mib):
        commands += ["-c", f"write -P 0xa5 {piece * stride}M 1M"]
    subprocess.run(["qemu-io", "-f", "raw", *commands, str(raw)], check=True, capture_output=True)
    return {qcow2.name: qcow2, raw.name: raw}


def host_seeding(repeats: int = 3) -> dict:
    from django.conf import settings

    from tests import second_host
    from vms import hypervisor

    a = hypervisor.Hypervisor(settings.LIBVIRT_URI)
    base = Path(settings.STORAGE_DIR) / "bench-hosts"
    pool_path = str(base / "pool")
    base.mkdir(parents=True, exist_ok=True)
    a.pool_ensure(POOL, pool_path)
    results = {"repeats": repeats, "rows": []}
    with second_host.running(base) as b, tempfile.TemporaryDirectory() as work:
        on_b = hypervisor.Hypervisor(b.uri)
        on_b.pool_ensure(POOL, pool_path)
        try:
            for data_mib in SIZES_MIB:
                files = _make_files(Path(work), data_mib)
                for name, local in files.items():
                    a.volume_delete(POOL, name)
                    # Into A's pool as the file is, holes kept (A is this machine).
                    subprocess.run(
                        ["cp", "--sparse=always", str(local), str(Path(pool_path) / name)],
                        check=True,
                    )
                    a.pool_refresh(POOL)
                    row = {"volume": name, "data_mib": data_mib, "virtual": VIRTUAL}
                    # The sparse stream last, so that what B stores is what it leaves.
                    for label, sparse in (("every_byte_s", False), ("sparse_s", True)):
                        times = []
                        for _ in range(repeats):
                            on_b.volume_delete(POOL, name)
                            start = time.perf_counter()
                            a.volume_transfer(POOL, on_b, POOL, name, sparse=sparse)
                            times.append(time.perf_counter() - start)
                        row[label] = median(times)
                    copied = Path(b.outside(pool_path)) / name
                    row["stored_mib"] = copied.stat().st_blocks * 512 / MIB
                    times = []
                    for _ in range(repeats):
                        target = Path(work) / "copy"
                        start = time.perf_counter()
                        subprocess.run(
                            ["cp", "--sparse=always", str(Path(pool_path) / name), str(target)],
                            check=True,
                        )
                        times.append(time.perf_counter() - start)
                        target.unlink()
                    row["local_cp_s"] = median(times)
                    results["rows"].append(row)
                    print(
                        f"{name:18} {data_mib:5} MiB data: stream {row['sparse_s']:.2f} s, "
                        f"every byte {row['every_byte_s']:.2f} s, local cp "
                        f"{row['local_cp_s']:.2f} s; {row['stored_mib']:.0f} MiB stored on B",
                        flush=True,
                    )
                    a.volume_delete(POOL, name)
                    on_b.volume_delete(POOL, name)
                    local.unlink()
        finally:
            on_b.pool_remove(POOL)
    a.pool_remove(POOL)
    shutil.rmtree(base, ignore_errors=True)
    return results


def markdown(results: dict) -> str:
    lines = [
        "## Seeding another host",
        "",
        "A volume streamed from one libvirtd's pool into a second libvirtd's (qemu+tcp on",
        "loopback) through the storage API, as a VM placed on a host without its snapshot's",
        "layers waits for; beside the same stream sending every byte, and `cp --sparse=always`",
        f"of the file on one disk. Median of {results['repeats']} runs; each file is",
        f"{VIRTUAL} virtual.",
        "",
        "| volume | data | sparse stream | every byte | local cp | stored on B |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['volume']} | {row['data_mib']} MiB | {row['sparse_s']:.2f} s "
            f"| {row['every_byte_s']:.2f} s | {row['local_cp_s']:.2f} s "
            f"| {row['stored_mib']:.0f} MiB |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from bench.common import setup_django

    setup_django()
    print(markdown(host_seeding(args.repeats)))


if __name__ == "__main__":
    main()
