"""API throughput and latency under gunicorn on PostgreSQL, with 1,000 VMs and 10,000
snapshots in the database, against its baseline: hand-written Django views that run the same
queries and return the same JSON (bench/plain.py), under the same server (wrk drives it). A bare
view that touches no database shows the floor under both."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from bench.common import ROOT, bench_environment
from vms.models import VMOperationKind

PORT = 8765
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def mac(prefix: int, i: int) -> str:
    return f"52:54:{prefix:02x}:{i // 65536:02x}:{i // 256 % 256:02x}:{i % 256:02x}"


def rows_host():
    """A host that only holds the rows the web benchmarks seed: disabled, so placement neither
    picks it nor counts its VMs against the real host, whose room the guests' parts need."""
    from vms.models import Host, HostState

    host, _ = Host.objects.get_or_create(
        name="bench-rows",
        defaults={
            "libvirt_uri": "test:///default",
            "pool_name": "bench-rows",
            "pool_path": "/nonexistent/bench-rows",
            "console_dir": "/nonexistent/bench-rows-console",
            "state": HostState.DISABLED,
        },
    )
    return host


def seed(vms: int = 1000, snapshots: int = 10_000):
    """A user with `vms` VMs and `snapshots` snapshots (rows only: this measures the web side)."""
    from accounts.models import Plan, User
    from operations.models import Operation, OperationState
    from snapshots.models import Snapshot, SnapshotState
    from vms.models import VM, Image, Layer, VMState

    plan = Plan.objects.get(slug="bench")
    user, _ = User.objects.get_or_create(username="bench-api", defaults={"plan": plan})
    image = Image.objects.get(slug="busybox", is_public=True)
    host = rows_host()
    if VM.objects.filter(owner=user).count() < vms:
        VM.objects.filter(owner=user).delete()
        rows = VM.objects.bulk_create(
            VM(owner=user, name=f"vm-{i:04}", host=host, image=image,
               disk_bytes=4 * 1024**3, state=VMState.STOPPED, mac_address=mac(1, i))
            for i in range(vms)
        )  # fmt: skip
        layers = Layer.objects.bulk_create(
            Layer(host=host, virtual_size=1, state="ready") for _ in range(snapshots)
        )
        Snapshot.objects.bulk_create(
            Snapshot(owner=user, source_vm=rows[i % vms], source_vm_name=rows[i % vms].name,
                     image=image, name=f"snapshot {i}", layer=layers[i], size_bytes=2**20,
                     state=SnapshotState.READY)
            for i in range(snapshots)
        )  # fmt: skip
        Operation.objects.create(
            kind=VMOperationKind.START, owner=user, lock=rows[0].lock, subject=rows[0],
            target_name="vm-0000",
            state=OperationState.SUCCEEDED, progress=100,
        )  # fmt: skip
        analyze()
    return user, Operation.objects.filter(owner=user).first()


def analyze() -> None:
    """Refresh PostgreSQL's statistics after a bulk load, as autovacuum would in time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def wrk(url: str, token: str, connections: int, seconds: int) -> dict:
    argv = [
        "wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
        "--latency", "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {}
    for label, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        latency[label] = float(value) * UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": latency.get("50"),
        "p99_ms": latency.get("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _get(url: str, token: str) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (our own server)
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def _comparable(answer: dict) -> dict:
    """An answer with its page links cut to their query (the two views live at two paths)."""
    links = {k: (answer[k] or "").partition("?")[2] for k in ("next", "previous") if k in answer}
    return {**answer, **links}


def _queries(url: str, token: str) -> int:
    """How many queries one request makes (the test client, in this process)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    client.get(url)  # warm: the first request loads what later ones find ready
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(url)
    if answer.status_code != 200:
        raise SystemExit(f"{url} answered {answer.status_code}")
    return len(queries)


def api_throughput(
    concurrency=(1, 8, 32), seconds: int = 10, vms: int = 1000, snapshots: int = 10_000
) -> dict:
    from accounts.services import token_create

    print(f"  API throughput: seeding {vms} VMs and {snapshots} snapshots...", flush=True)
    user, operation = seed(vms, snapshots)
    token = token_create(user=user, name="bench")[1]
    env = {**os.environ, **bench_environment()}
    workers = 2 * (os.cpu_count() or 1) + 1
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bench.wsgi", "--bind", f"127.0.0.1:{PORT}",
         "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{PORT}"
    paths = {
        "list snapshots": ("/api/snapshots/", "/bench/plain/snapshots/"),
        "read an operation": (
            f"/api/operations/{operation.pk}/",
            f"/bench/plain/operations/{operation.pk}/",
        ),
    }
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/bench/bare/", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        results = {"workers": workers, "endpoints": {}}
        for name, (api_path, plain_path) in paths.items():
            # The baseline is fair only if it answers the same.
            if _comparable(_get(base + api_path, token)) != _comparable(
                _get(base + plain_path, token)
            ):
                raise SystemExit(f"{name}: the plain view's JSON differs from the API's")
            results["endpoints"][name] = {
                "queries": {"api": _queries(api_path, token), "plain": _queries(plain_path, token)},
                "api": {},
                "plain": {},
            }
            for connections in concurrency:
                print(f"    {name}, {connections} client(s)...", flush=True)
                entry = results["endpoints"][name]
                entry["api"][connections] = wrk(base + api_path, token, connections, seconds)
                entry["plain"][connections] = wrk(base + plain_path, token, connections, seconds)
        results["bare"] = {
            connections: wrk(f"{base}/bench/bare/", token, connections, seconds)
            for connections in concurrency
        }
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)
