"""Shared fixtures: personas, a real task-queue worker, and a libvirt host with its own pool.

Personas follow one story: alice owns things, bob is another customer, charlie is an admin.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from accounts.services import user_create

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """Tests hash passwords with MD5: a real PBKDF2 hash costs about half a second here, and the
    suite makes hundreds (every persona, every log-in). What the tests check is who may log in,
    not the hash's strength; the service's own settings keep PBKDF2."""
    from django.test.utils import override_settings

    fast = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    fast.enable()
    yield
    fast.disable()


@pytest.fixture(scope="session", autouse=True)
def test_hosts_allowed():
    """The suite registers hosts on libvirt's fake driver (test:///default) and on a second
    libvirtd that listens on qemu+tcp on 127.0.0.1, which a real installation refuses unless
    told otherwise (`vms.host_uris`)."""
    from django.test.utils import override_settings

    # Ports are published on this machine only by the tests of publishing, which remove their
    # rules again: the suite leaves no forwarded port behind.
    allowed = override_settings(ALLOW_TCP_HOSTS=True, ALLOW_TEST_HOSTS=True, SSH_PORTS="")
    allowed.enable()
    yield
    allowed.disable()


@pytest.fixture(autouse=True)
def empty_cache(request, django_db_setup, django_db_blocker):
    """Every test starts with empty throttle and rate counters: tests share no state through the
    cache (the next test's user may even get the same primary key), nor through the health
    check's kept result."""
    from django.conf import settings
    from django.core.cache import cache

    from core.health import forget_cached

    forget_cached()

    if settings.REDIS_URL:
        # Only this run's keys: the Redis may be shared, and it carries the task queue too.
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{settings.QUEUE_NAME}:*"))
        if keys:
            client.delete(*keys)
    elif "db" in request.fixturenames or "transactional_db" in request.fixturenames:
        # The cache is a table of the test database; a test without one uses no cache either.
        with django_db_blocker.unblock():
            cache.clear()


@pytest.fixture
def plans(db):
    """Koding's plan table, as the first migrations seed it (transactional tests empty tables)."""
    from accounts.services import plans_ensure_koding

    return plans_ensure_koding()


@pytest.fixture
def alice(plans):
    return user_create(username="alice", password="correct-horse-battery", email="a@example.com")


@pytest.fixture
def bob(plans):
    return user_create(username="bob", password="correct-horse-battery", email="b@example.com")


@pytest.fixture
def charlie(plans):
    return user_create(username="charlie", password="correct-horse-battery", is_staff=True)


def database_url() -> str:
    """A URL for the database the tests run on, for processes the tests start."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict:
    from django.conf import settings

    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    # The run's own guests' network (see `test_pool`).
    env["GUEST_NETWORK"] = settings.GUEST_NETWORK
    env["GUEST_SUBNET"] = str(settings.GUEST_SUBNET)
    env["SSH_PORTS"] = settings.SSH_PORTS
    env.update(extra)
    return env


class Worker:
    """A real `manage.py worker` on the test database, in its own process group."""

    def __init__(self, **env: str):
        self.log = open(ROOT / "var" / f"worker-{os.getpid()}.log", "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "worker"],
            cwd=ROOT,
            env=child_env(**env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole cluster (guard, workers, monitor) at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Ask the cluster to stop as Ctrl-C would; kill what is left after a while."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        self.kill(signal.SIGKILL)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return (ROOT / "var" / f"worker-{os.getpid()}.log").read_text(errors="replace")


@pytest.fixture
def worker(transactional_db):
    """A task-queue worker process that sees what the test commits."""
    (ROOT / "var").mkdir(exist_ok=True)
    started = Worker()
    yield started
    started.stop()


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll `predicate` until it returns something true; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting for {what}.")
        time.sleep(interval)


@pytest.fixture
def fake_hosts(monkeypatch):
    """Every host's `hypervisor` is an in-memory `FakeHypervisor`, one per URI, made on first
    use: `fake_hosts[uri]` is the fake behind the hosts with that URI. For rule tests that check
    what the service asks of a host (and what it does when the host fails), not what libvirt
    does; `tests/hypervisor/` holds the fake to libvirt's behaviour."""
    from vms.hypervisor.fake import FakeHypervisor
    from vms.models import Host

    class FakeHosts(dict):
        def __missing__(self, uri: str) -> FakeHypervisor:
            self[uri] = FakeHypervisor(uri)
            return self[uri]

    fakes = FakeHosts()
    monkeypatch.setattr(Host, "hypervisor", property(lambda host: fakes[host.libvirt_uri]))
    return fakes


@pytest.fixture(scope="session")
def test_pool():
    """A storage pool and console folder of this test run's own, removed afterwards.

    Fails (does not skip) when libvirtd cannot be reached: the real-hypervisor tests are part of
    the suite, and `bin/test` starts libvirtd.
    """
    import shutil
    import uuid

    from django.conf import settings

    from vms import hypervisor, network

    uri = settings.LIBVIRT_URI
    name = f"ks-test-{uuid.uuid4().hex[:8]}"
    base = settings.STORAGE_DIR / "tests" / name
    config = {
        "libvirt_uri": uri,
        "domain_type": settings.LIBVIRT_DOMAIN_TYPE,
        "pool_name": name,
        "pool_path": str(base / "pool"),
        "console_dir": str(base / "console"),
    }
    local = hypervisor.Hypervisor(uri)
    local.pool_ensure(name, config["pool_path"])
    local.pool_ensure(f"{name}-console", config["console_dir"])
    guests_network = _guests_network_of_our_own(uri, name)
    yield config
    for record in local.domains():
        if record.metadata.get("pool") == name:
            local.domain_undefine(record.uuid)
    local.pool_remove(name)
    local.pool_remove(f"{name}-console")
    local.network_remove(network.network_spec())
    guests_network.disable()
    shutil.rmtree(base, ignore_errors=True)


def _guests_network_of_our_own(uri: str, name: str):
    """Give this run a guests' network of its own (named like its pool, on a free /24 of
    10.214.0.0/16), so that it never hands out an address another installation on this libvirtd
    gave; returns the settings override, enabled."""
    import ipaddress
    import random

    from django.test.utils import override_settings

    from vms import hypervisor, network
    from vms.models import Host

    for _ in range(30):
        subnet = ipaddress.IPv4Network(f"10.214.{random.randrange(256)}.0/24")
        ours = override_settings(GUEST_NETWORK=name, GUEST_SUBNET=subnet)
        ours.enable()
        try:
            network.host_network_ensure(Host(name="tests", libvirt_uri=uri))
        except hypervisor.HypervisorError:
            # Most likely the subnet is in use by another network: try another.
            hypervisor.Hypervisor(uri).network_remove(network.network_spec())
            ours.disable()
            continue
        return ours
    pytest.fail("No free /24 in 10.214.0.0/16 for the test run's guests' network.")


@pytest.fixture(scope="session")
def second_libvirtd():
    """Starts second libvirt hosts on this machine: `second_libvirtd(shadow_dir)` returns a
    started `tests.second_host.SecondHost`, an unprivileged libvirtd at `.uri`
    (qemu+tcp://127.0.0.1:<port>/session) with a random host UUID, in whose mount namespace
    `shadow_dir` shows a private folder (`.private_dir` from outside). `.stop()` takes the host
    down with its guests, `.start()` brings it back, `.close()` deletes it early; whatever is
    left is closed at the end of the run. A factory, so each caller says which folder it shadows
    (usually the folder of `test_pool`, whose pool and console paths then exist on both hosts).

    Skips when not run as root: the bind mount and the change of user need it.
    """
    from tests import second_host

    if os.geteuid() != 0:
        pytest.skip("a second libvirt host needs root (a mount namespace and another user)")
    started = []

    def start(shadow_dir):
        host = second_host.start(shadow_dir)
        started.append(host)
        return host

    yield start
    for host in started:
        host.close()


@pytest.fixture
def host(db, test_pool):
    """The local host, on this test run's pool. Each test starts with an empty pool, but for the
    image files uploaded once per run (`image_files`)."""
    from vms import hypervisor
    from vms.models import Host
    from vms.selectors import DEFAULT_HOST_NAME

    yield Host.objects.create(name=DEFAULT_HOST_NAME, **test_pool)
    local, pool = hypervisor.Hypervisor(test_pool["libvirt_uri"]), test_pool["pool_name"]
    # Guests a test left running would slow down the next ones.
    for record in local.domains():
        if record.metadata.get("pool") == pool:
            local.domain_undefine(record.uuid)
    # Layers are built on each other: delete the ones nothing is built on first.
    for _ in range(50):
        names = set(local.volume_names(pool)) - SHARED_VOLUMES
        if not names:
            break
        parents = set()
        for name in names:
            backing = local.volume_info(pool, name).backing_path
            if backing:
                parents.add(backing.rsplit("/", 1)[-1])
        for name in names - parents:
            local.volume_delete(pool, name)


# The volumes of the image uploaded once per run, kept between tests.
SHARED_VOLUMES: set[str] = set()


@pytest.fixture
def sync_tasks(monkeypatch):
    """Run enqueued tasks at once, in this process (the worker's code, without the worker)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture(scope="session")
def guest_files(tmp_path_factory):
    """The busybox guest image, built once per test run from the Debian packages."""
    from vms import image_build

    return image_build.build(tmp_path_factory.mktemp("guest-image"))


@pytest.fixture(scope="session")
def image_files(test_pool, guest_files):
    """The busybox image's volumes, uploaded into the test pool once per run."""
    from vms.image_upload import image_upload, image_volumes
    from vms.models import Host

    layer_id = image_upload(host=Host(**test_pool), files=guest_files)
    SHARED_VOLUMES.update(image_volumes(layer_id))
    return layer_id


@pytest.fixture
def image(host, image_files, guest_files):
    """The busybox image, registered on the test host (uploaded again only if a test deleted
    its volumes)."""
    from vms.image_upload import image_record, image_upload, image_volumes

    layer_id = image_files
    present = set(host.hypervisor.volume_names(host.pool_name))
    if not set(image_volumes(layer_id)) <= present:
        for name in image_volumes(layer_id):
            host.hypervisor.volume_delete(host.pool_name, name)
        layer_id = image_upload(host=host, files=guest_files)
        SHARED_VOLUMES.update(image_volumes(layer_id))
    return image_record(
        host=host,
        layer_id=layer_id,
        slug="busybox",
        name="Busybox",
        description="",
        live_identity=True,
    )


def vm_maker(image):
    """Create and boot real VMs from `image` through the service, as a user's request would."""
    from vms.models import VM, vm_id_of_lock
    from vms.services import vm_create

    def make(owner, name="box", **kwargs):
        operation = vm_create(owner=owner, name=name, image=image, **kwargs)
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
        return VM.objects.select_related("host", "image", "active_layer").get(
            pk=vm_id_of_lock(operation.lock)
        )

    return make


@pytest.fixture
def make_vm(transactional_db, image, sync_tasks):
    """Create and boot real busybox VMs through the service, the way a user's request would."""
    return vm_maker(image)


# Said once at the end of the run, outside any test's captured output.
SESSION_NOTES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for note in SESSION_NOTES:
        terminalreporter.write_line(note)


@pytest.fixture(scope="session")
def debian_files():
    """The Debian 12 image, built from Debian's packages when this machine has no build of its
    recipe yet (kept for the next runs), with the build's time said once."""
    from vms import image_debian
    from vms.image_upload import image_cache_dir

    files, build = image_debian.build_cached(image_cache_dir())
    how = "reused a build that took" if build["cached"] else "built in"
    SESSION_NOTES.append(f"Debian image: {how} {build['seconds']} s ({files.root_disk.parent})")
    return files


@pytest.fixture(scope="session")
def debian_image_files(test_pool, debian_files):
    """The Debian image's volumes, uploaded into the test pool once per run."""
    from vms.image_upload import image_upload, image_volumes
    from vms.models import Host

    layer_id = image_upload(host=Host(**test_pool), files=debian_files)
    SHARED_VOLUMES.update(image_volumes(layer_id))
    return layer_id


@pytest.fixture
def debian_image(host, debian_image_files):
    """The Debian image, registered on the test host."""
    from vms import image_debian
    from vms.image_upload import DEBIAN_SLUG, image_record

    return image_record(
        host=host,
        layer_id=debian_image_files,
        slug=DEBIAN_SLUG,
        name="Debian 12",
        description="",
        os_name=image_debian.OS_NAME,
        summary=image_debian.SUMMARY,
        cmdline=image_debian.CMDLINE,
        live_identity=True,
    )


@pytest.fixture
def make_debian_vm(transactional_db, debian_image, sync_tasks):
    """Create and boot real Debian VMs through the service (512 MiB: systemd's share)."""
    make = vm_maker(debian_image)
    return lambda owner, name="box", **kwargs: make(owner, name, **{"memory_mib": 512, **kwargs})


def succeeded(operation):
    """Assert an operation ran to success (tasks run inline under `sync_tasks`)."""
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    return operation


@contextlib.contextmanager
def tasks_inline():
    """Within the block, enqueued tasks run at once in this process (no worker needed)."""
    from django_q.conf import Conf

    before = Conf.SYNC
    Conf.SYNC = True
    try:
        yield
    finally:
        Conf.SYNC = before
