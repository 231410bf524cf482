"""Queue latency: from `async_task` to the task starting in a worker, for each broker the service
offers: the database queue on SQLite (the embedded default) and on PostgreSQL, and Redis; the
baseline is django-q2's own database broker, which polls, in the same run.

Each broker gets the service's own worker (`manage.py worker`, two workers); a separate process
enqueues, first tasks 20 ms apart, then a burst of 100 at once. The task writes how long it
waited to a file, so nothing else (saving results) rides on the measurement."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, bench_environment, median, percentile

ENQUEUE = """
import sys, time
from pathlib import Path
import django
django.setup()
from django_q.tasks import async_task
spaced, burst, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])

def wait_for(lines, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= lines:
            return
        time.sleep(0.05)
    raise SystemExit(f"only {len(out.read_text().splitlines()) if out.exists() else 0} of {lines}")

task = "bench.tasks.started_at"
for _ in range(5):  # warm-up: the workers have loaded the task's module
    async_task(task, time.time(), str(out))
    time.sleep(0.1)
wait_for(5)
for _ in range(spaced):
    async_task(task, time.time(), str(out))
    time.sleep(0.02)
wait_for(5 + spaced)
time.sleep(0.5)
for _ in range(burst):
    async_task(task, time.time(), str(out))
wait_for(5 + spaced + burst)
"""


def _stats(seconds: list[float]) -> dict:
    ms = [value * 1000 for value in seconds]
    return {
        "tasks": len(ms),
        "p50_ms": median(ms),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms),
    }


POLLING = {"DJANGO_SETTINGS_MODULE": "bench.settings_polling"}


def _brokers(workdir: Path) -> list[tuple[str, dict]]:
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    sqlite = {"DATABASE_URL": f"sqlite:///{workdir / 'queue.sqlite3'}"}
    return [
        ("database (SQLite)", sqlite),
        ("database (SQLite), polling only (baseline)", {**sqlite, **POLLING}),
        ("database (PostgreSQL)", {}),
        ("database (PostgreSQL), polling only (baseline)", POLLING),
        ("redis", {"REDIS_URL": redis_url}),
    ]


def measure(env: dict, spaced: int, burst: int, workdir: Path) -> dict:
    out = workdir / f"latency-{time.monotonic_ns()}.txt"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        subprocess.run(
            [sys.executable, "-c", ENQUEUE, str(spaced), str(burst), str(out)],
            cwd=ROOT,
            env=env,
            check=True,
        )
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, 9)
    waits = [float(line) for line in out.read_text().splitlines()][5:]
    return {"spaced": _stats(waits[:spaced]), "burst": _stats(waits[spaced:])}


def queue_latency(spaced: int = 200, burst: int = 100) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="queue-", dir=ROOT / "var" / "bench") as tmp:
        workdir = Path(tmp)
        for name, overrides in _brokers(workdir):
            print(f"  queue latency, {name}...", flush=True)
            env = {
                **os.environ,
                **bench_environment(),
                "REDIS_URL": "",
                **overrides,
                "QUEUE_NAME": f"ks-bench-queue-{os.getpid()}",
                "WORKERS": "2",
            }
            results[name] = measure(env, spaced, burst, workdir)
            time.sleep(1)
    return results
