"""What the benchmarks share: an installation of their own, made afresh for each run, and small
statistics.

The benchmarks run on PostgreSQL (`BENCH_DATABASE_URL`, by default a database `ks_bench` on the
local server) with their own data folder (`var/bench`), storage pool and console folder
(`koding-snapshots-bench`), guests' network (`koding-snapshots-bench`, 10.215.0.0/24) and queue,
and no published ports. `reset` removes what an earlier run left of these (its guests, pools,
network, database) before a run, so a run never meets a leftover, and never touches the guests,
files or pools of a running service or of the tests. Images built from packages are cached by
their recipe's hash (`STORAGE_DIR/image-cache`) and reused.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ks_bench"
POOL = "koding-snapshots-bench"


def bench_environment() -> dict:
    """Environment variables that point the service at the benchmark's own database and pool."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        "DATA_DIR": str(BENCH_DIR),
        "STORAGE_POOL": POOL,
        "GUEST_NETWORK": POOL,
        "GUEST_SUBNET": "10.215.0.0/24",
        "SSH_PORTS": "",
        "QUEUE_NAME": "koding-snapshots-bench",
        "LOG_LEVEL": "WARNING",
        "API_MUTATION_RATE": "1000000/min",
    }


def reset() -> None:
    """Remove what an earlier run left: the bench's guests, pools, network and database (made
    again by `setup_django` and the run). Runs before Django is set up."""
    import shutil

    import libvirt

    for key, value in bench_environment().items():
        os.environ.setdefault(key, value)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from vms import hypervisor, network

    local = hypervisor.Hypervisor(settings.LIBVIRT_URI)
    try:
        for record in local.domains():
            if record.metadata.get("pool") == POOL:
                local.domain_undefine(record.uuid)
        local.pool_remove(POOL)
        local.pool_remove(f"{POOL}-console")
        local.network_remove(network.network_spec())
    except (hypervisor.HypervisorError, libvirt.libvirtError) as exc:
        raise SystemExit(f"Could not clear the bench's earlier guests and pools: {exc}") from None
    for folder in (settings.STORAGE_DIR / POOL, settings.STORAGE_DIR / f"{POOL}-console"):
        shutil.rmtree(folder, ignore_errors=True)
    (BENCH_DIR / "results.json").unlink(missing_ok=True)
    drop_database(os.environ["DATABASE_URL"])


def _admin(url: str):
    import psycopg2

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
    )
    admin.autocommit = True
    return admin, name


def drop_database(url: str) -> None:
    admin, name = _admin(url)
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # our own setting
    admin.close()


def ensure_database(url: str) -> None:
    admin, name = _admin(url)
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')  # a name from our own setting
    admin.close()


def setup_django() -> None:
    """Configure this process for the benchmark database, migrate it, and set Django up."""
    environment = bench_environment()
    for key, value in environment.items():
        os.environ.setdefault(key, value)
    ensure_database(os.environ["DATABASE_URL"])
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def median(values) -> float:
    return statistics.median(values)


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def commit() -> str:
    """The commit measured, marked when the checkout has changes of its own."""
    described = _first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return described or "unknown"


def _first_line(argv) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "not found"


def machine() -> dict:
    """The facts of this machine and the versions that matter, for the report."""
    import django
    import libvirt

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    qemu = _first_line(["qemu-system-x86_64", "--version"]).splitlines()
    postgres = _first_line(["psql", "--version"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "libvirt": ".".join(str(libvirt.getVersion() // 1000**i % 1000) for i in (2, 1, 0)),
        "qemu": qemu[0] if qemu else "unknown",
        "postgresql": postgres,
        "domain_type": os.environ.get("LIBVIRT_DOMAIN_TYPE", "qemu"),
    }
