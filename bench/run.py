"""Runs the benchmarks and writes docs/benchmarks.md and docs/benchmarks.png.

bin/bench                      everything
bin/bench live pause           some parts: snapshots, pause, live, storage, queue, api, scale,
                               browse, chains, hosts, load, debian, forks
bin/bench --repeats 3          fewer repetitions (default 5)
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, machine, setup_django

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=[*PARTS, []], default=[])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="1,4,8", help="GiB written, for snapshots")
    args = parser.parse_args()
    parts = args.parts or list(PARTS)

    setup_django()
    from bench import (
        api,
        browse,
        chains,
        debian,
        forks,
        guests,
        hosts,
        live,
        load,
        queue_latency,
        report,
        scale,
    )

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    results["date"] = datetime.date.today().isoformat()
    guest_parts = {
        "snapshots",
        "pause",
        "live",
        "storage",
        "api",
        "scale",
        "chains",
        "load",
        "debian",
        "forks",
    }
    lab = guests.Lab() if guest_parts & set(parts) else None
    sizes = [int(s) for s in args.sizes.split(",")]
    steps = {
        "snapshots": (
            "snapshot_operations",
            lambda: guests.snapshot_operations(lab, sizes, args.repeats),
        ),
        "pause": ("guest_pause", lambda: guests.guest_pause(lab, args.repeats)),
        "live": ("live_snapshots", lambda: live.live_snapshots(lab, args.repeats)),
        "storage": ("storage", lambda: guests.storage_cost(lab)),
        "queue": ("queue_latency", queue_latency.queue_latency),
        "api": ("api", api.api_throughput),
        "scale": ("scale", scale.data_scale),
        "browse": ("browse", lambda: browse.browse_bench(args.repeats)),
        "chains": ("chains", lambda: chains.chain_retention(lab)),
        "hosts": ("hosts", lambda: hosts.host_seeding(min(args.repeats, 3))),
        "load": ("load", lambda: load.user_actions_under_load(lab)),
        "debian": ("debian", lambda: debian.debian_guests(lab, min(args.repeats, 2))),
        "forks": ("forks", lambda: forks.forks(lab, min(args.repeats, 3))),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        if part in parts:
            key, measure = steps[part]
            results[key] = measure()
            # Kept after each part, so that a later failure loses nothing measured.
            results = json.loads(json.dumps(results))  # keys as the file keeps them (strings)
            RESULTS.write_text(json.dumps(results, indent=2))
    report.plot(results)
    report.write(results)
    print((report.DOCS / "benchmarks.md").read_text())


if __name__ == "__main__":
    main()
