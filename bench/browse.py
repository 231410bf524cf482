"""Looking inside snapshots: listing a folder and comparing two snapshots of a guest file system
with 10,000 files, read in process from the qcow2 chain (the `diskread` library), beside the
baseline of converting the chain to a raw disk (`qemu-img convert -O raw`) and reading that with
e2fsprogs' `debugfs` (for a comparison: `rdump` both trees, then `diff -rq`).

The disks are built offline: `mkfs.ext4 -d` makes the bottom layer from a folder, and the second
layer is the first one with 150 files changed, added or removed by `debugfs`, written as a qcow2
overlay of only the clusters that differ, as a guest's writes would leave it.

    .venv/bin/python -m bench.browse [--repeats 5] [--files 10000]

A comparison comes a page at a time (`diskread.PAGE_ENTRIES` changes): the figures are for
every page, each following the `next` cursor of the one before, as a client reading the whole
comparison would. It measures and prints; it passes or fails on nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diskread
from bench.common import median

CLUSTER = 64 * 1024
T0 = 1_780_000_000


def _run(*argv, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(T0))
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    return subprocess.run(
        [str(a) for a in argv], check=True, capture_output=True, env=env, **kwargs
    )


def build(work: Path, files: int) -> dict:
    """The two layers and what was changed between them."""
    rng = random.Random(10_000)  # noqa: S311 - reproducible file sizes, not secrets
    root = work / "root"
    per_dir = 100
    for index in range(files):
        folder = root / f"d{index // per_dir:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([60, 300, 1500, 4000, 9000, 40_000])
        (folder / f"f{index % per_dir:03d}.txt").write_bytes(
            rng.randbytes(size // 2).hex().encode()
        )
    base_raw, base = work / "base.raw", work / "base.qcow2"
    _run("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", root, base_raw, "512M")
    _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", base_raw, base)

    top_raw, top = work / "top.raw", work / "top.qcow2"
    shutil.copy(base_raw, top_raw)
    commands, payload = [], work / "payload.txt"
    payload.write_text("changed contents\n" * 20)
    dirs = files // per_dir
    for n in range(50):
        commands += [f"rm /d{(n * 7) % dirs:03d}/f{n:03d}.txt"]  # removed
        commands += [f"write payload.txt /d{(n * 11) % dirs:03d}/new{n:03d}.txt"]  # added
        target = f"/d{(n * 13) % dirs:03d}/f{(n + 50) % per_dir:03d}.txt"
        commands += [f"rm {target}", f"write payload.txt {target}"]  # changed
    (work / "cmds").write_text("\n".join(commands) + "\n")
    _run("debugfs", "-w", "-f", work / "cmds", top_raw, cwd=work)

    _run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, top)
    chunks = work / "chunks"
    chunks.mkdir()
    writes = []
    with base_raw.open("rb") as before, top_raw.open("rb") as after:
        offset = 0
        while data := after.read(CLUSTER):
            if before.read(CLUSTER) != data:
                (chunks / str(offset)).write_bytes(data)
                writes += ["-c", f"write -q -s {chunks / str(offset)} {offset} {len(data)}"]
            offset += len(data)
    for start in range(0, len(writes), 400):
        _run("qemu-io", "-f", "qcow2", *writes[start : start + 400], top)
    shutil.rmtree(chunks)
    return {"base": base, "top": top, "clusters": len(writes) // 2, "raw": (base_raw, top_raw)}


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return median(times), result


def _all_pages(compare_page) -> diskread.Comparison:
    """Every page of a comparison, following each page's `next` cursor, added up in one."""
    whole = diskread.Comparison()
    cursor = None
    while True:
        page = compare_page(cursor)
        for kind in ("added", "removed", "changed"):
            getattr(whole, kind).extend(getattr(page, kind))
        whole.entries_compared += page.entries_compared
        whole.bytes_compared += page.bytes_compared
        cursor = page.next
        if cursor is None:
            return whole


def measure(repeats: int = 5, files: int = 10_000) -> dict:
    with tempfile.TemporaryDirectory(prefix="ks-bench-browse-") as tmp:
        work = Path(tmp)
        disks = build(work, files)
        old_chain, new_chain = [disks["base"]], [disks["base"], disks["top"]]
        folder = f"/d{min(42, files // 100 - 1):03d}"  # a folder of 100 files

        def ours_list():
            with diskread.Disk(new_chain) as disk:
                return len(disk.listdir(folder))

        def ours_diff():
            return _all_pages(
                lambda cursor: diskread.compare_chains(old_chain, new_chain, cursor=cursor)
            )

        def ours_full_diff():
            with diskread.Disk(old_chain) as old, diskread.Disk(new_chain) as new:
                return _all_pages(
                    lambda cursor: diskread.compare_disks(old, new, None, cursor=cursor)
                )

        def convert(chain_top: Path, out: Path) -> None:
            out.unlink(missing_ok=True)
            _run("qemu-img", "convert", "-O", "raw", chain_top, out)

        def baseline_list():
            raw = work / "list.raw"
            convert(disks["top"], raw)
            out = _run("debugfs", "-R", f"ls -l {folder}", raw, text=True).stdout
            return sum(1 for line in out.splitlines() if line.strip()) - 2  # . and ..

        def baseline_diff():
            trees = []
            for name, top in (("old", disks["base"]), ("new", disks["top"])):
                raw, tree = work / f"{name}.raw", work / f"{name}-tree"
                convert(top, raw)
                shutil.rmtree(tree, ignore_errors=True)
                tree.mkdir()
                _run("debugfs", "-R", f"rdump / {tree}", raw)
                trees.append(tree)
            result = subprocess.run(["diff", "-rq", *trees], capture_output=True, text=True)
            return len(result.stdout.splitlines())

        list_ours, listed = _timed(ours_list, repeats)
        list_base, listed_base = _timed(baseline_list, repeats)
        diff_ours, comparison = _timed(ours_diff, repeats)
        full_ours, full = _timed(ours_full_diff, max(1, repeats // 2))
        diff_base, diff_lines = _timed(baseline_diff, max(1, repeats // 2))

    return {
        "files": files,
        "changed_clusters": disks["clusters"],
        "list": {
            "entries": listed,
            "ours_s": list_ours,
            "baseline_s": list_base,
            "baseline_entries": listed_base,
        },
        "diff": {
            "added": len(comparison.added),
            "removed": len(comparison.removed),
            "changed": len(comparison.changed),
            "entries_compared": comparison.entries_compared,
            "bytes_compared": comparison.bytes_compared,
            "ours_s": diff_ours,
            "ours_without_layers_s": full_ours,
            "ours_without_layers_bytes_compared": full.bytes_compared,
            "baseline_s": diff_base,
            "baseline_diff_lines": diff_lines,
        },
    }


def report(results: dict) -> str:
    listing, diff = results["list"], results["diff"]
    return "\n".join(
        [
            f"Browsing a snapshot: {results['files']} files, second layer "
            f"{results['changed_clusters']} clusters of 64 KiB",
            f"  list a folder ({listing['entries']} entries)",
            f"    in process (open chain + list)   {listing['ours_s'] * 1000:9.1f} ms",
            f"    baseline (convert raw + debugfs) {listing['baseline_s'] * 1000:9.1f} ms",
            f"  compare two snapshots ({diff['added']} added, {diff['removed']} removed, "
            f"{diff['changed']} changed; {diff['entries_compared']} entries compared)",
            f"    in process, layer-bounded        {diff['ours_s'] * 1000:9.1f} ms "
            f"({diff['bytes_compared']} bytes of contents read)",
            f"    in process, every file's content {diff['ours_without_layers_s'] * 1000:9.1f} ms "
            f"({diff['ours_without_layers_bytes_compared']} bytes read)",
            f"    baseline (2 converts + rdump + diff -rq) {diff['baseline_s'] * 1000:9.1f} ms "
            f"({diff['baseline_diff_lines']} lines of diff -rq)",
        ]
    )


def browse_bench(repeats: int = 5, files: int = 10_000) -> dict:
    """For bench/run.py: measure, print, and return the figures to keep."""
    results = measure(repeats, files)
    print(report(results))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    print(report(measure(args.repeats, args.files)))


if __name__ == "__main__":
    main()
