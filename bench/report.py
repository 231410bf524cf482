"""Writes docs/benchmarks.md and docs/benchmarks.png from the measured results."""

from __future__ import annotations

from bench.common import ROOT

DOCS = ROOT / "docs"


def _yes(ok: bool) -> str:
    return "met" if ok else "**not met**"


def write(results: dict, folder=None):
    """Write the report (into docs/, or `folder` for a partial or quick run); return its path."""
    folder = folder or DOCS
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# Benchmarks", ""]
    lines += [
        "Measured by `bin/bench` (see `bench/`) in one run: every figure here, and its baseline",
        "beside it, comes from that run; medians of the stated repetitions. Benchmarks measure",
        "and print; nothing passes or fails.",
        "",
        f"- Run: {results.get('date', '?')}, commit `{results.get('commit', '?')}`, "
        + (
            "quick mode (small sizes, one repetition)"
            if results.get("quick")
            else f"{results.get('repeats', '?')} repetitions where a part repeats (fewer where "
            "it says)"
        ),
    ]
    not_run = results.get("parts_not_run") or []
    if not_run:
        lines.append(f"- Not run in this run (no figures for them here): {', '.join(not_run)}.")
    for part, error in (results.get("parts_failed") or {}).items():
        lines.append(f"- **Failed in this run** (no figures for it here): {part}: {error}")
    lines += ["", "## Machine", ""]
    for key, value in results.get("machine", {}).items():
        lines.append(f"- {key}: {value}")
    lines.append("")

    ops = results.get("snapshot_operations")
    if ops:
        sizes = sorted(ops, key=int)
        lines += [
            "## Snapshot operations on a running guest",
            "",
            "Seconds from the service call to the end of the operation (the worker's code, in",
            "process; queue latency is measured below). Baselines: `virsh snapshot-create-as",
            "--disk-only --atomic --no-metadata` on the same running guest, and a full",
            "`qemu-img convert -O qcow2` copy of the same disk chain. Restore includes stopping",
            "and starting QEMU (the guest's boot is not included).",
            "",
            "| written | take | virsh (baseline) | take / virsh | restore | new VM | full copy "
            "(baseline) |",
            "|---|---|---|---|---|---|---|",
        ]
        for size in sizes:
            r = ops[size]
            lines.append(
                f"| {size} GiB | {r['take']:.3f} | {r['virsh']:.3f} | "
                f"{r['take'] / r['virsh']:.2f}x | {r['restore']:.3f} | {r['new_vm']:.3f} | "
                f"{r['copy']:.3f} |"
            )
        small, big = ops[sizes[0]], ops[sizes[-1]]
        span = int(sizes[-1]) - int(sizes[0])
        lines += [
            "",
            f"Slope in disk size, {sizes[0]} GiB to {sizes[-1]} GiB (per GiB written):",
            "",
        ]
        for key in ("take", "restore", "new_vm", "virsh", "copy"):
            slope = (big[key] - small[key]) / span if span else 0
            lines.append(f"- {key}: {slope * 1000:+.1f} ms/GiB ({big[key] / small[key]:.2f}x)")
        worst = max(ops[s]["take"] / ops[s]["virsh"] for s in sizes)
        flat = all(big[k] <= 1.2 * small[k] for k in ("take", "restore", "new_vm"))
        lines += [
            "",
            f"- Goal: our take within 1.5x of the plain virsh call: {_yes(worst <= 1.5)} "
            f"(worst {worst:.2f}x).",
            f"- Goal: take, restore and new VM flat in disk size (largest no slower than 1.2x the "
            f"smallest): {_yes(flat)}.",
            "",
        ]

    pause = results.get("guest_pause")
    if pause:
        lines += [
            "## Guest pause during a take",
            "",
            "A loop in the guest stamps `/proc/uptime` every 10 ms (10 ms resolution); the largest",
            "gap over a 4 s window with a take in the middle, against the same window without one.",
            "",
            f"- with a take: {pause['take_max_gap_ms']} ms; without (baseline): "
            f"{pause['idle_max_gap_ms']} ms",
            f"- Goal: under 100 ms: {_yes(pause['take_max_gap_ms'] < 100)}.",
            "",
        ]

    deb = results.get("debian")
    if deb:
        frozen = deb.get("pause_frozen_ms")
        lines += [
            "## Real development VMs (Debian 12)",
            "",
            "From the request to the guest's SSH server answering through the port its host",
            "publishes (a TCP connection that reads the `SSH-` banner), 1 vCPU and 1 GiB under",
            "the host's domain type; beside it, in the same run, a busybox VM from the request to",
            f"its console saying it is up. Medians of {len(deb['boot_to_ssh_s'])} runs.",
            "",
            "| | seconds |",
            "|---|---|",
            f"| Debian: new VM to SSH answering | {deb['boot_to_ssh_median_s']:.1f} |",
            f"| Debian: new VM from a snapshot to SSH answering | "
            f"{deb['clone_to_ssh_median_s']:.1f} |",
            f"| baseline: busybox, new VM to its console | {deb['busybox_boot_median_s']:.1f} |",
            "",
            "The largest gap a 10 ms loop in the Debian guest sees over 4 s with a take in the",
            "middle: with its file systems frozen by the guest agent (a consistent snapshot), and",
            "with the agent stopped (crash-consistent).",
            "",
            f"- frozen by the agent: {frozen if frozen is not None else 'not measured'} ms; "
            f"without: {deb['pause_plain_ms']} ms",
            "",
        ]

    forks = results.get("forks")
    if forks:
        lines += _forks_section(forks)

    live = results.get("live_snapshots")
    if live:
        lines += [
            "## Live snapshots (memory included)",
            "",
            "One running guest, medians of the repetitions. The pause: the downtime libvirt",
            "reports for the memory job, the time the domain is seen paused when polled from",
            "the host (too coarse for a pause of milliseconds), and the largest gap a 10 ms loop",
            "in the guest sees over 4 s (under software emulation the guest's clock stops while",
            "it is paused, so the gap can hide a pause). Restore: from the call until the guest",
            f"answers a command on its console. Memory file: {live['memory_mib']:.0f} MiB.",
            "",
            "| | live take (memory) | disk-only take | no take (baseline) |",
            "|---|---|---|---|",
            f"| downtime libvirt reports | {live['downtime_live_take_ms']:.0f} ms | — | — |",
            f"| domain seen paused (host poll) | {live['paused_live_take_s'] * 1000:.0f} ms | "
            f"{live['paused_disk_take_s'] * 1000:.0f} ms | — |",
            f"| largest gap (guest) | {live['gap_live_take_ms']} ms | "
            f"{live['gap_disk_take_ms']} ms | {live['gap_idle_ms']} ms |",
            f"| whole take | {live['live_take_s']:.3f} s | {live['disk_take_s']:.3f} s | — |",
            "",
            "| restore until the console answers | seconds |",
            "|---|---|",
            f"| live restore (resumes, no boot) | {live['live_restore_answer_s']:.2f} |",
            f"| disk-only restore (boots) | {live['disk_restore_answer_s']:.2f} |",
            "| baseline: `virsh snapshot-revert` of an internal snapshot | "
            f"{live['internal_revert_answer_s']:.2f} |",
            "",
            "- Goal: a live restore no slower than the internal revert: "
            f"{_yes(live['live_restore_answer_s'] <= live['internal_revert_answer_s'])}.",
            "",
        ]

    queue = results.get("queue_latency")
    if queue:
        lines += _queue_section(queue)

    api = results.get("api")
    if api:
        lines += _api_section(api)

    scale = results.get("scale")
    if scale:
        lines += [
            "## Scale of the data",
            "",
            "One user's pages with growing numbers of snapshots (VMs: a tenth as many), Django's",
            "test client in process; query count, and median time of 5 requests. The VM page",
            "polls every second while an operation runs on the VM: the whole card (with the",
            "snapshot table, usage and button out of band) when the card changed, the progress",
            "line alone when only it moved, and nothing (204) when nothing did.",
            "",
        ]
        names = list(next(iter(scale.values())))
        lines += ["| snapshots | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for size, pages in sorted(scale.items(), key=lambda kv: int(kv[0])):
            cells = [f"{p['queries']} queries, {p['ms']:.1f} ms" for p in pages.values()]
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
        counts = {
            name: {pages[name]["queries"] for pages in scale.values()}
            for name in next(iter(scale.values()))
        }
        lines += [
            "",
            f"- Goal: flat query count: {_yes(all(len(c) == 1 for c in counts.values()))}.",
            "",
        ]

    store = results.get("storage")
    if store:
        layers = store["snapshot_layers_bytes"] + store["image_bytes"]
        gib = 1024**3
        lines += [
            "## Storage",
            "",
            f"{store['rounds']} snapshots of a guest that writes 100 MiB between them "
            f"({store['written_mib']} MiB in all).",
            "",
            f"- copy-on-write layers (the snapshots' layers and the image): {layers / gib:.2f} GiB",
            f"- baseline, a full copy at each snapshot: {store['full_copies_bytes'] / gib:.2f} GiB",
            f"- ratio: {store['full_copies_bytes'] / max(layers, 1):.1f}x less with layers",
            f"- Goal: close to 1 GiB in all, not 10 full disks: {_yes(layers < 1.5 * gib)}.",
            "",
        ]
    if results.get("chains"):
        from bench.chains import markdown

        lines += markdown(results["chains"]).splitlines()
    if results.get("load"):
        from bench.load import markdown as load_markdown

        lines += ["", *load_markdown(results["load"]).splitlines()]
    if results.get("hosts"):
        from bench.hosts import markdown as hosts_markdown

        lines += hosts_markdown(results["hosts"]).splitlines()
    lines += [
        "## Reading the results",
        "",
        "- Our take is the whole request: validation, the plan-limit check under a row lock, the",
        "  operation record, a new layer made through the storage-pool API (libvirt runs",
        "  `qemu-img create`, about 17 ms here), the same libvirt snapshot call virsh makes (about",
        "  16 ms), and the bookkeeping of the snapshot row. virsh lets QEMU create the new file",
        "  itself, which the storage API does not; that file would then be unknown to the pool.",
        "- Restore stops QEMU and starts it again (about 2 s under software emulation); it does",
        "  not depend on the disk's size. The guest's boot afterwards is not counted.",
        "",
    ]
    if results.get("snapshot_operations") or results.get("api"):
        lines += [
            "![Snapshot operations against disk size, and API throughput](benchmarks.png)",
            "",
        ]
    path = folder / "benchmarks.md"
    path.write_text("\n".join(lines))
    return path


def _queue_section(queue: dict) -> list[str]:
    lines = [
        "## Queue latency",
        "",
        "From `async_task` to the task starting in the service's own worker (`manage.py worker`,",
        "two workers), for each broker: tasks 20 ms apart, then a burst enqueued at once (the",
        "last of a burst waits for the ones before it).",
        "",
        "| broker | tasks | p50 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for broker, runs in queue.items():
        for how, r in runs.items():
            lines.append(
                f"| {broker}, {how} | {r['tasks']} | {r['p50_ms']:.1f} ms | "
                f"{r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms |"
            )
    lines.append("")
    for broker, runs in queue.items():
        if "baseline" in broker:
            continue
        for how in ("spaced", "burst"):
            r = runs[how]
            if broker == "redis":
                ok = r["p99_ms"] <= 20
                goal = f"p99 ≤ 20 ms: {_yes(ok)} ({r['p99_ms']:.1f} ms)"
            else:
                ok = r["p50_ms"] <= 25 and r["p99_ms"] <= 100
                goal = (
                    f"p50 ≤ 25 ms and p99 ≤ 100 ms: {_yes(ok)} ({r['p50_ms']:.1f} ms, "
                    f"{r['p99_ms']:.1f} ms)"
                )
            lines.append(f"- Goal, {broker}, {how}: {goal}.")
    lines += [
        "",
        "Where the time went, and goes:",
        "",
        "- The polling baseline finds a task only at its next look at the database, every 0.2 s:",
        "  half a poll on average, up to a whole one. The service's database queue",
        "  (operations/broker.py) is woken by each task instead: PostgreSQL's `NOTIFY` in the",
        "  transaction that inserts it, a datagram to the worker's pusher on SQLite. It still",
        "  looks every 0.2 s, in case a wake-up was lost.",
        "- django-q2's database broker claims one task per look, with a connection check and an",
        "  update each; in a burst the claims queue up. The service's claims up to 10 at once in",
        "  one update.",
        "- What is left is the cluster's own path: the pusher hands the task to a worker process",
        "  through a pipe, and a burst waits for the two worker processes (two cores here).",
        "  Redis hands over a task with one blocking pop, and has no poll at all.",
        "",
    ]
    return lines


def _api_section(api: dict) -> list[str]:
    endpoints, bare = api["endpoints"], api["bare"]
    any_endpoint = next(iter(endpoints.values()))
    clients = list(any_endpoint["api"])
    lines = [
        "## API under gunicorn on PostgreSQL",
        "",
        f"{api.get('workers')} gunicorn workers; 1,000 VMs and 10,000 snapshots in the database;",
        "wrk per cell, token authentication. Baseline: hand-written Django views",
        "(`bench/plain.py`) that run the same queries and return the same JSON (checked in the",
        "run), under the same server. A bare view that touches no database is the floor under",
        "both.",
        "",
        "| endpoint | clients | API requests/s | plain view requests/s | API / plain | API p50 | "
        "API p99 | plain p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    worst, p99_at_8 = None, []
    for name, entry in endpoints.items():
        for c in clients:
            a, p = entry["api"][c], entry["plain"][c]
            ratio = a["rps"] / p["rps"]
            worst = ratio if worst is None else min(worst, ratio)
            if str(c) == "8":
                p99_at_8.append(a["p99_ms"])
            lines.append(
                f"| {name} | {c} | {a['rps']:.0f} | {p['rps']:.0f} | {ratio:.2f} | "
                f"{a['p50_ms']:.1f} ms | {a['p99_ms']:.1f} ms | {p['p99_ms']:.1f} ms |"
            )
    for c in clients:
        b = bare[c]
        lines.append(f"| bare view (floor) | {c} | | {b['rps']:.0f} | | | | {b['p99_ms']:.1f} ms |")
    lines += ["", "Queries per request:", ""]
    for name, entry in endpoints.items():
        q = entry["queries"]
        lines.append(f"- {name}: API {q['api']}, plain view {q['plain']}")
    lines += ["", f"- Goal: the API at ≥ 0.7x the plain view: {_yes(worst >= 0.7)} (worst "
              f"{worst:.2f}x)."]  # fmt: skip
    if p99_at_8:
        worst_p99 = max(p99_at_8)
        lines.append(
            f"- Goal: API p99 < 50 ms at 8 clients: {_yes(worst_p99 < 50)} ({worst_p99:.1f} ms)."
        )
    lines.append("")
    return lines


def _forks_section(forks: dict) -> list[str]:
    lines = [
        "## Forks of a running VM",
        "",
        "`vm_fork`: a live snapshot of a running VM and new VMs that resume from it, beside a new",
        "VM of the same image booted cold in the same run. Times run from the request (the",
        "operation run by the worker in this process) until the child answers a command typed on",
        "its console; identity: until it says on its console that it took its own name and MAC.",
        "The source's pause: the downtime libvirt reports for the fork's memory job, and the",
        "largest gap a 10 ms loop in the source guest saw. Resident memory: the child's QEMU",
        "process after 5 s idle.",
        "",
        "| | " + " | ".join(forks) + " |",
        "|---|" + "---|" * len(forks),
    ]

    def row(label: str, key: str, fmt: str) -> str:
        return f"| {label} | " + " | ".join(format(r[key], fmt) for r in forks.values()) + " |"

    lines += [
        row("guest RAM (MiB)", "memory_mib", ".0f"),
        row("source's pause, libvirt downtime (ms)", "fork_downtime_ms", ".0f"),
        row("source's pause, largest gap in the guest (ms)", "fork_gap_ms", ".0f"),
        row("fork of 1: child answers (s)", "fork_one_answer_s", ".2f"),
        row("fork of 1: child has its identity (s)", "fork_one_identity_s", ".2f"),
        row("baseline: cold boot until the console answers (s)", "cold_boot_answer_s", ".2f"),
        row("fork of 10: the last child answers (s)", "fork_many_last_answer_s", ".2f"),
        row("child's resident memory (MiB)", "child_rss_mib", ".0f"),
        row("of it, anonymous: its own pages (MiB)", "child_anon_mib", ".0f"),
        row("source's resident memory (MiB)", "source_rss_mib", ".0f"),
        "",
    ]
    for name, r in forks.items():
        speedup = r["cold_boot_answer_s"] / r["fork_one_answer_s"]
        share = r["child_anon_mib"] / r["memory_mib"]
        lines += [
            f"- {name}: pause ≤ 250 ms: {_yes(r['fork_downtime_ms'] <= 250)}; one child "
            f"answering ≤ 2 s: {_yes(r['fork_one_answer_s'] <= 2)}, {speedup:.1f}x faster than "
            f"a cold boot (goal 10x for Debian); {r['fork_many']} children ≤ 10 s: "
            f"{_yes(r['fork_many_last_answer_s'] <= 10)}; a child's own memory "
            f"{share:.0%} of its RAM (goal ≤ 30 % with shared pages): {_yes(share <= 0.3)}.",
        ]
    lines += [
        "",
        "Children do not share their memory pages yet: each restore reads the saved memory into",
        "the child's own anonymous memory. Sharing needs the guests' RAM in a file (libvirt's",
        "file-backed memory) that children map privately and QEMU's `x-ignore-shared` migration",
        "capability, which libvirt 9.0 offers only through QEMU pass-through; and for a source",
        "that goes on running, the file must be copied while the source is paused, which costs",
        "more than the pause goal for a guest of 1 GiB on a file system without reflinks.",
        "",
    ]
    return lines


def plot(results: dict, folder=None) -> None:
    folder = folder or DOCS
    ops, api = results.get("snapshot_operations"), results.get("api")
    if not ops and not api:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if ops:
        sizes = sorted(ops, key=int)
        x = [int(s) for s in sizes]
        for key, label in (
            ("take", "take"),
            ("virsh", "virsh disk-only (baseline)"),
            ("restore", "restore"),
            ("new_vm", "new VM"),
            ("copy", "full copy (baseline)"),
        ):
            axes[0].plot(x, [ops[s][key] for s in sizes], marker="o", label=label)
        axes[0].set_yscale("log")
        axes[0].set_xlabel("GiB written in the disk")
        axes[0].set_ylabel("seconds (log)")
        axes[0].set_title("Snapshot operations against disk size")
        axes[0].legend(fontsize=8)
    if api:
        bars = {}
        for name, entry in api["endpoints"].items():
            bars[f"{name}, API"] = entry["api"]
            bars[f"{name}, plain view"] = entry["plain"]
        clients = list(api["bare"])
        width = 0.8 / len(bars)
        for i, (name, cells) in enumerate(bars.items()):
            axes[1].bar(
                [j + i * width for j in range(len(clients))],
                [cells[c]["rps"] for c in clients],
                width,
                label=name,
            )
        axes[1].set_xticks(
            [j + 0.4 - width / 2 for j in range(len(clients))], [f"{c} clients" for c in clients]
        )
        axes[1].set_ylabel("requests per second")
        axes[1].set_title("API under gunicorn (PostgreSQL, 10,000 snapshots)")
        axes[1].legend(fontsize=8)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / "benchmarks.png", dpi=110)
