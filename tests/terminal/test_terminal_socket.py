"""Who may open a VM's terminal socket: its owner, signed in, from a page of this site. Anyone
else gets the same refusal as for a VM that does not exist, and nothing is opened."""

import asyncio
import threading

import pytest

from terminal import asgi
from terminal.views import socket_url
from tests.factories import vm_row
from vms.models import VMState

pytestmark = pytest.mark.django_db(transaction=True)


def knock(path, *, cookie="", origin="http://localhost:8000", host="localhost:8001"):
    """Open the socket as a browser would; what the server sent back, in order."""
    sent = []
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect"}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect"}

    async def send(message):
        sent.append(message)

    headers = [(b"host", host.encode()), (b"cookie", cookie.encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "websocket", "path": path, "headers": headers}
    # In a thread of its own: the browser tests leave an event loop in this one.
    runner = threading.Thread(
        target=lambda: asyncio.run(asgi.terminal_websocket(scope, receive, send))
    )
    runner.start()
    runner.join(timeout=30)
    return sent


def session_of(client, user) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def path_of(vm) -> str:
    return f"/vms/{vm.pk}/terminal/ws/"


def test_the_owner_of_a_stopped_vm_is_told_it_is_not_running(client, alice):
    vm = vm_row(owner=alice, state=VMState.STOPPED)
    sent = knock(path_of(vm), cookie=session_of(client, alice))
    assert sent[0] == {"type": "websocket.accept"}
    assert "is not running" in sent[1]["text"]
    assert sent[-1]["type"] == "websocket.close"


def test_someone_not_signed_in_is_refused_before_anything_opens(alice):
    vm = vm_row(owner=alice)
    assert knock(path_of(vm)) == [{"type": "websocket.close", "code": 4404}]


def test_another_users_vm_is_refused_like_one_that_does_not_exist(client, alice, bob):
    vm = vm_row(owner=alice)
    cookie = session_of(client, bob)
    theirs = knock(path_of(vm), cookie=cookie)
    missing = knock("/vms/00000000-0000-0000-0000-000000000000/terminal/ws/", cookie=cookie)
    assert theirs == missing == [{"type": "websocket.close", "code": 4404}]


@pytest.mark.parametrize(
    "origin", ["", "http://evil.example", "http://localhost.evil.example:8000", "null"]
)
def test_a_socket_opened_by_another_sites_page_is_refused(client, alice, origin):
    vm = vm_row(owner=alice)
    sent = knock(path_of(vm), cookie=session_of(client, alice), origin=origin)
    assert sent == [{"type": "websocket.close", "code": 4403}]


def test_a_host_not_allowed_is_refused_even_from_its_own_page(client, alice):
    vm = vm_row(owner=alice)
    sent = knock(
        path_of(vm),
        cookie=session_of(client, alice),
        origin="http://intruder.example:8000",
        host="intruder.example:8001",
    )
    assert sent == [{"type": "websocket.close", "code": 4403}]


def test_the_page_connects_to_the_terminal_port_of_its_own_host(rf, alice, settings):
    vm = vm_row(owner=alice)
    settings.TERMINAL_PORT, settings.TERMINAL_URL = 8001, ""
    request = rf.get("/", HTTP_HOST="localhost:8000")
    assert socket_url(request, vm) == f"ws://localhost:8001/vms/{vm.pk}/terminal/ws/"
    settings.TERMINAL_URL = "wss://vms.example.com"
    assert socket_url(request, vm) == f"wss://vms.example.com/vms/{vm.pk}/terminal/ws/"


def test_the_terminal_page_of_a_stopped_vm_says_it_opens_once_it_runs(client, alice):
    vm = vm_row(owner=alice, state=VMState.STOPPED)
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/terminal/").content.decode()
    assert "its terminal opens once it runs" in page
    assert 'id="terminal"' not in page


def test_another_users_terminal_page_is_a_404(client, alice, bob):
    vm = vm_row(owner=alice)
    client.force_login(bob)
    assert client.get(f"/vms/{vm.pk}/terminal/").status_code == 404
