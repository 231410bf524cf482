"""The terminal: a running guest's console in the browser, every key at once, full-screen
programs drawn, over the ASGI side's WebSocket (a real uvicorn process, as bin/run runs it)."""

import contextlib
import socket
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from tests import guest
from tests.browser.conftest import log_in
from tests.browser.test_pages_in_browser import ready_vm
from tests.conftest import ROOT, child_env, wait_for

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]

SCREEN = """() => {
    const buffer = window.kodingTerminal.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    return lines.join("\\n");
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def terminal_server(transactional_db, settings):
    port = free_port()
    log = open(ROOT / "var" / f"terminal-{port}.log", "w+b")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "koding_snapshots.asgi:application",
            "--port",
            str(port),
            "--ws",
            "websockets-sansio",
            "--lifespan",
            "off",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def listening():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    wait_for(listening, timeout=30, what="the terminal's server to listen")
    settings.TERMINAL_PORT = port
    yield port
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    process.kill()
    log.close()


def screen_shows(page, text, *, times=1, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(SCREEN).count(text) >= times:
            return
        time.sleep(0.2)
    pytest.fail(f"The terminal never showed {text!r} {times} times:\n{page.evaluate(SCREEN)}")


def test_the_terminal_runs_a_command_and_vi_and_a_second_tab_sees_the_same_screen(
    page, live_worker, terminal_server, image, alice
):
    vm = ready_vm(alice, image)
    guest.wait_for_boot(vm)
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")
    page.get_by_test_id("open-terminal").click()
    expect(page.get_by_test_id("terminal-status")).to_contain_text("Connected")

    page.locator("#terminal").click()
    page.keyboard.type("echo $((6*7))-answered")
    page.keyboard.press("Enter")
    screen_shows(page, "42-answered")

    # A second tab on the same VM shares the console: it is sent what the screen shows, and
    # what is typed in either appears in both.
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.get_by_test_id("terminal-status")).to_contain_text("Connected")
    screen_shows(other, "42-answered")
    other.locator("#terminal").click()
    other.keyboard.type("echo $((7*6))-from-the-other-tab")
    other.keyboard.press("Enter")
    screen_shows(page, "42-from-the-other-tab")  # its output, in the first tab too
    other.close()
    page.locator("#terminal").click()

    page.keyboard.type("vi /root/note")
    page.keyboard.press("Enter")
    screen_shows(page, "\n~", times=5)  # vi draws the empty lines of its screen
    page.keyboard.type("ihello from vi")
    page.keyboard.press("Escape")
    time.sleep(0.5)  # as a person pauses: an Escape followed at once by more is a key sequence
    page.keyboard.type(":wq")
    page.keyboard.press("Enter")
    page.keyboard.type("cat /root/note; echo done-$((1+1))")
    page.keyboard.press("Enter")
    screen_shows(page, "done-2")
    assert guest.run(vm, "cat /root/note") == "hello from vi"
