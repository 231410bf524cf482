"""What the benchmarks share: Django set up on a database of their own, and small statistics.

The benchmarks run on PostgreSQL (`BENCH_DATABASE_URL`, by default a database `ks_bench` on the
local server, created when missing), so they are an installation of their own: their own storage
pool, named for it, and they never touch the guests, files or pools of a running service or of
the tests.
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
RESULTS = ROOT / "var" / "bench" / "results.json"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ks_bench"


def bench_environment() -> dict:
    """Environment variables that point the service at the benchmark's own database and pool."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        "DATA_DIR": str(ROOT / "var" / "bench"),
        "QUEUE_NAME": "koding-snapshots-bench",
        "LOG_LEVEL": "WARNING",
        "API_MUTATION_RATE": "1000000/min",
    }


def ensure_database(url: str) -> None:
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
