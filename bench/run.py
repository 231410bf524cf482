"""Runs the benchmarks and writes their report, every figure from this one run.

bin/bench                      everything; writes docs/benchmarks.md and docs/benchmarks.png
bin/bench live pause           some parts (snapshots, pause, live, storage, queue, api, scale,
                               browse, chains, hosts, load, debian, forks); the report, which
                               says which parts did not run, goes to var/bench/report/
bin/bench --quick              every part that runs in a minute or two, at small sizes, with one
                               repetition: proves the benchmarks still run (var/bench/quick/)
bin/bench --repeats 3          fewer repetitions (default 5)

Each run starts from a clean slate of its own (bench/common.py: `reset`): its database, pools,
network and guests are made afresh, and nothing of a running service or of the tests is touched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_DIR, commit, machine, reset, setup_django

PARTS = (
    "snapshots",
    "pause",
    "live",
    "storage",
    "queue",
    "api",
    "scale",
    "browse",
    "chains",
    "hosts",
    "load",
    "debian",
    "forks",
)
# Parts that need the bench's Lab: its host, image, plan and user.
GUEST_PARTS = {
    "snapshots", "pause", "live", "storage", "api", "scale", "chains", "load", "debian", "forks"
}  # fmt: skip
# What --quick leaves out: parts whose smallest meaningful run takes many minutes (a Debian image
# build and boots, 500 scheduled snapshots, a user's actions under load, a second host).
NOT_QUICK = {"chains", "load", "debian", "hosts", "forks"}


def _steps(lab, args) -> dict:
    from bench import api, browse, chains, debian, forks, guests, hosts, live, load, scale
    from bench import queue_latency as queue

    quick, repeats = args.quick, args.repeats
    sizes = [int(s) for s in args.sizes.split(",")]
    if quick:
        return {
            "snapshots": lambda: guests.snapshot_operations(lab, [1], 1),
            "pause": lambda: guests.guest_pause(lab, 1),
            "live": lambda: live.live_snapshots(lab, 1),
            "storage": lambda: guests.storage_cost(lab, rounds=2, mib=10),
            "queue": lambda: queue.queue_latency(spaced=10, burst=10),
            "api": lambda: api.api_throughput((1,), seconds=1, vms=20, snapshots=100),
            "scale": lambda: scale.data_scale((10, 100)),
            "browse": lambda: browse.browse_bench(1, files=1000),
        }
    return {
        "snapshots": lambda: guests.snapshot_operations(lab, sizes, repeats),
        "pause": lambda: guests.guest_pause(lab, repeats),
        "live": lambda: live.live_snapshots(lab, repeats),
        "storage": lambda: guests.storage_cost(lab),
        "queue": queue.queue_latency,
        "api": api.api_throughput,
        "scale": scale.data_scale,
        "browse": lambda: browse.browse_bench(repeats),
        "chains": lambda: chains.chain_retention(lab),
        "hosts": lambda: hosts.host_seeding(min(repeats, 3)),
        "load": lambda: load.user_actions_under_load(lab),
        "debian": lambda: debian.debian_guests(lab, min(repeats, 2)),
        "forks": lambda: forks.forks(lab, min(repeats, 3)),
    }


# The key each part's results are kept under (the report reads them by it).
KEYS = {
    "snapshots": "snapshot_operations",
    "pause": "guest_pause",
    "live": "live_snapshots",
    "storage": "storage",
    "queue": "queue_latency",
    "api": "api",
    "scale": "scale",
    "browse": "browse",
    "chains": "chains",
    "hosts": "hosts",
    "load": "load",
    "debian": "debian",
    "forks": "forks",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=[*PARTS, []], default=[])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="1,4,8", help="GiB written, for snapshots")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    args = parser.parse_args()
    chosen = args.parts or [p for p in PARTS if not (args.quick and p in NOT_QUICK)]
    full = not args.parts and not args.quick
    out = None if full else BENCH_DIR / ("quick" if args.quick else "report")

    reset()
    setup_django()
    from bench import guests, report

    now = datetime.datetime.now(datetime.UTC)
    results = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "machine": machine(),
        "quick": args.quick,
        "repeats": 1 if args.quick else args.repeats,
        "parts_run": [],
        "parts_not_run": [p for p in PARTS if p not in chosen],
    }
    lab = guests.Lab() if GUEST_PARTS & set(chosen) else None
    steps = _steps(lab, args)
    results_file = BENCH_DIR / "results.json"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    failed = {}
    for part in PARTS:
        if part in chosen:
            print(f"{part}...", flush=True)
            try:
                results[KEYS[part]] = steps[part]()
            except (Exception, SystemExit) as exc:  # the report says so; the other parts run
                traceback.print_exc()
                failed[part] = f"{type(exc).__name__}: {exc}"
                results["parts_failed"] = failed
            else:
                results["parts_run"].append(part)
            # Kept after each part, so that a later failure loses nothing measured.
            results = json.loads(json.dumps(results))  # keys as the file keeps them (strings)
            results_file.write_text(json.dumps(results, indent=2))
    written = report.write(results, out)
    report.plot(results, out)
    print(written.read_text())
    print(f"Written to {written}.")
    if failed:
        raise SystemExit(f"Parts that failed: {', '.join(failed)}.")


if __name__ == "__main__":
    main()
