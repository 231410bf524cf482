"""Stopping the service: Ctrl-C or SIGTERM ends `bin/run` within seconds, and an operation that
was running then is repaired by the next worker, with nothing lost."""

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

from operations.models import Operation, OperationState
from tests import guest
from tests.conftest import ROOT, Worker, tasks_inline, wait_for
from vms.models import VM, VMState, vm_id_of_lock
from vms.services import vm_create, vm_stop

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(sid: int) -> list[str]:
    found = subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True).stdout
    return found.split()


@pytest.fixture
def service(tmp_path):
    """`bin/run` on a data folder, storage pool and port of its own, in its own session."""
    from django.conf import settings

    from vms import hypervisor

    port = free_port()
    pool = f"ks-test-run-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        STORAGE_DIR=str(tmp_path / "storage"),
        STORAGE_POOL=pool,
        QUEUE_NAME=pool,
        PORT=str(port),
        TERMINAL_PORT=str(free_port()),
        IMAGES="busybox",  # the Debian image's first build is not what these tests are about
    )
    log = open(tmp_path / "run.log", "w+b")  # noqa: SIM115
    process = subprocess.Popen(
        ["bin/run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )

    def healthy():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    process.args_port = port
    try:
        wait_for(healthy, timeout=120, interval=0.5, what="bin/run to serve /healthz")
        yield process, log
    finally:
        # bin/run gives the web server and the worker process groups of their own: every
        # process of its session goes.
        for pid in session_processes(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        process.wait(timeout=30)
        log.close()
        hypervisor.Hypervisor(settings.LIBVIRT_URI).pool_remove(pool)
        hypervisor.Hypervisor(settings.LIBVIRT_URI).pool_remove(f"{pool}-console")


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(lambda pid: os.kill(pid, signal.SIGTERM), id="SIGTERM to bin/run"),
        pytest.param(lambda pid: os.killpg(pid, signal.SIGINT), id="Ctrl-C"),
        pytest.param(lambda pid: os.kill(pid, signal.SIGHUP), id="terminal closed"),
    ],
)
def test_bin_run_stops_within_10_s(service, stop):
    process, log = service
    assert len(session_processes(process.pid)) >= 3  # bin/run, the web server, the worker

    stop(process.pid)
    started = time.monotonic()
    wait_for(
        lambda: process.poll() is not None and not session_processes(process.pid),
        timeout=10,
        what="every process to stop",
    )
    print(f"bin/run and all its processes stopped in {time.monotonic() - started:.1f} s")
    log.seek(0)
    assert b"Stopping: no operation is running." in log.read()


class BrowserConnections:
    """Connections a busy browser opens ahead of its next requests, sending nothing yet: a new
    one every 20 ms until the server stops taking them. Each holds a web worker's thread for a
    while."""

    def __init__(self, port: int):
        self.port = port
        self.opened: list[socket.socket] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._open, daemon=True)
        self.thread.start()

    def _open(self):
        while not self.done.wait(0.02):
            try:
                self.opened.append(socket.create_connection(("127.0.0.1", self.port), timeout=1))
            except OSError:
                return

    def close(self):
        self.done.set()
        self.thread.join()
        for connection in self.opened:
            connection.close()


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(lambda pid: os.kill(pid, signal.SIGTERM), id="SIGTERM to bin/run"),
        pytest.param(lambda pid: os.killpg(pid, signal.SIGINT), id="Ctrl-C"),
    ],
)
def test_a_stop_while_a_browser_holds_connections_logs_no_killed_worker(service, stop):
    process, log = service
    browser = BrowserConnections(process.args_port)
    time.sleep(1)
    try:
        stop(process.pid)
        wait_for(
            lambda: process.poll() is not None and not session_processes(process.pid),
            timeout=15,
            what="every process to stop",
        )
    finally:
        browser.close()
    log.seek(0)
    output = log.read().decode(errors="replace")
    assert "Stopped." in output
    assert "SIGKILL" not in output
    assert "Perhaps out of memory" not in output


@pytest.fixture
def slow_stop_worker(transactional_db):
    """A real worker that waits up to five minutes for a guest to power off."""
    started = Worker(VM_STOP_TIMEOUT="300")
    yield started
    started.stop()


def test_an_operation_running_at_a_stop_is_repaired_by_the_next_worker(
    slow_stop_worker, alice, image
):
    created = vm_create(owner=alice, name="box", image=image)
    wait_for(
        lambda: Operation.objects.filter(pk=created.pk, state=OperationState.SUCCEEDED).exists(),
        timeout=60,
        what="the VM to be created",
    )
    vm = VM.objects.select_related("host").get(pk=vm_id_of_lock(created.lock))
    guest.wait_for_boot(vm)
    guest.run(vm, "echo kept > /root/marker; sync; killall acpid; echo ignoring the power button")
    stop = vm_stop(vm=vm, user=alice)
    wait_for(
        lambda: Operation.objects.filter(pk=stop.pk, progress__gte=20).exists(),
        timeout=30,
        what="the stop to be waiting for the guest",
    )

    slow_stop_worker.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    slow_stop_worker.process.wait(timeout=10)
    print(f"The worker stopped in {time.monotonic() - started:.1f} s")
    assert "did not finish within 5 s and was stopped" in slow_stop_worker.output()
    stop.refresh_from_db()
    assert stop.state == OperationState.RUNNING  # handed over, not yet repaired

    next_worker = Worker()
    try:
        wait_for(
            lambda: Operation.objects.filter(
                pk=stop.pk, state=OperationState.FAILED, message="Failed"
            ).exists(),
            timeout=60,
            what="the next worker to repair the stop",
        )
    finally:
        next_worker.stop()
    stop.refresh_from_db()
    assert "stopped before it finished" in stop.error
    assert "The VM is running." in stop.error
    vm.refresh_from_db()
    assert vm.state == VMState.RUNNING
    with tasks_inline():  # no worker runs now to carry the console input
        assert guest.run(vm, "cat /root/marker") == "kept"
