"""The terminal's WebSocket: `/vms/<id>/terminal/ws/`, for the VM's owner only, from a page of
this site only.

Frames: what the browser sends (text) is typed into the console as it comes, every key at once;
what the guest prints is sent as binary frames; a text frame `{"ended": "<sentence>"}` says why
the session ends, just before it closes. A session without input for TERMINAL_IDLE_SECONDS ends.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from http.cookies import CookieError, SimpleCookie
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from terminal.hub import Ended, NotRunning, hub

PATH = re.compile(r"^/vms/(?P<vm>[0-9a-f-]{36})/terminal/ws/$")
# A keystroke, or a paste: more than this in one frame is refused.
INPUT_FRAME_MAX = 16 * 1024


def origin_allowed(headers: dict[bytes, bytes]) -> bool:
    """The page that opens the socket must be one of ours: its origin's host is the host the
    socket was asked of (ports aside: the terminal has a port of its own) and an allowed one."""
    origin = headers.get(b"origin", b"").decode("latin-1")
    match = re.match(r"^https?://([^/]+)$", origin)
    if not match:
        return False
    origin_host, _ = split_domain_port(match.group(1))
    asked_host, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    return (
        bool(origin_host)
        and origin_host == asked_host
        and validate_host(origin_host, settings.ALLOWED_HOSTS)
    )


def _user_of(cookie_header: str):
    """The signed-in user the session cookie names (as Django's own middleware finds it), or
    None."""
    from django.contrib.auth import get_user

    close_old_connections()
    try:
        cookies = SimpleCookie(cookie_header)
    except CookieError:
        return None
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(morsel.value)

    class Request:
        session = store

    user = get_user(Request)
    return user if user.is_authenticated and user.is_active else None


def _vm_of(user, vm_id: str):
    from vms.models import VM

    close_old_connections()
    return VM.objects.owned_by(user).select_related("host").filter(pk=vm_id).first()


async def _close(send, code: int) -> None:
    await send({"type": "websocket.close", "code": code})


async def _end(send, reason: str, code: int = 4000) -> None:
    await send({"type": "websocket.send", "text": json.dumps({"ended": reason})})
    await _close(send, code)


async def terminal_websocket(scope, receive, send) -> None:
    match = PATH.match(scope["path"])
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    headers = dict(scope["headers"])
    if match is None:
        return await _close(send, 4404)
    if not origin_allowed(headers):
        return await _close(send, 4403)
    user = await sync_to_async(_user_of)(headers.get(b"cookie", b"").decode("latin-1"))
    vm = await sync_to_async(_vm_of)(user, match["vm"]) if user else None
    if vm is None:  # not signed in, or not theirs: the same answer as a VM that does not exist
        return await _close(send, 4404)
    await send({"type": "websocket.accept"})
    if vm.state != "running":
        return await _end(send, f"VM {vm.name} is not running, so it has no console.")
    shared = hub.console(vm.host.libvirt_uri, uuid.UUID(str(vm.domain_uuid)))
    try:
        queue = await shared.join()
    except NotRunning:
        return await _end(send, f"VM {vm.name} is not running, so it has no console.")
    except Exception:
        return await _end(send, f"The console of {vm.name} cannot be reached; try again shortly.")
    try:
        await _session(receive, send, shared, queue)
    finally:
        shared.leave(queue)


async def _session(receive, send, shared, queue) -> None:
    idle = settings.TERMINAL_IDLE_SECONDS
    last_input = time.monotonic()

    async def from_browser() -> None:
        nonlocal last_input
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or (message.get("text") or "").encode()
            if len(data) > INPUT_FRAME_MAX:
                continue
            last_input = time.monotonic()
            shared.send(data)

    async def to_browser() -> str:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=5)
            except TimeoutError:
                item = None
            if isinstance(item, Ended):
                return item.reason
            if item:
                await send({"type": "websocket.send", "bytes": item})
            if time.monotonic() - last_input > idle:
                minutes = max(1, round(idle / 60))
                plural = "s" if minutes != 1 else ""
                return f"No input for {minutes} minute{plural}; the session ended."

    reading = asyncio.ensure_future(from_browser())
    writing = asyncio.ensure_future(to_browser())
    done, pending = await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if writing in done and not writing.cancelled() and writing.exception() is None:
        await _end(send, writing.result())
