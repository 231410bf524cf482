"""Queue latency: from enqueue to the task starting in a worker, with the database broker and
with Redis. Each broker gets a real `manage.py qcluster`; a separate process enqueues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench.common import ROOT, bench_environment, median, percentile

ENQUEUE = """
import json, sys, time
import django
django.setup()
from django_q.models import Task
from django_q.tasks import async_task
count, group = int(sys.argv[1]), sys.argv[2]
Task.objects.filter(group=group).delete()
async_task("bench.tasks.started_at", time.time(), group=group + "-warmup", save=True)
deadline = time.time() + 60
while not Task.objects.filter(group=group + "-warmup").exists() and time.time() < deadline:
    time.sleep(0.1)
for _ in range(count):
    async_task("bench.tasks.started_at", time.time(), group=group, save=True)
    time.sleep(0.02)
deadline = time.time() + 120
while Task.objects.filter(group=group).count() < count and time.time() < deadline:
    time.sleep(0.2)
print(json.dumps([t.result for t in Task.objects.filter(group=group)]))
"""


def queue_latency(count: int = 200) -> dict:
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    results = {}
    for broker, url in (("database", ""), ("redis", redis_url)):
        print(f"  queue latency, {broker} broker...", flush=True)
        env = {
            **os.environ,
            **bench_environment(),
            "REDIS_URL": url,
            "QUEUE_NAME": f"ks-bench-{broker}-{os.getpid()}",
            "WORKERS": "2",
        }
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out = subprocess.run(
                [sys.executable, "-c", ENQUEUE, str(count), f"latency-{broker}"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
        latencies = [value * 1000 for value in json.loads(out.strip().splitlines()[-1])]
        results[broker] = {
            "tasks": len(latencies),
            "p50_ms": median(latencies),
            "p99_ms": percentile(latencies, 0.99),
        }
        time.sleep(1)
    return results
