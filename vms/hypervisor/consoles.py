"""A guest's serial console as a live, two-way byte stream (libvirt's console stream), for a
process that keeps consoles open: the terminal server.

libvirt delivers a non-blocking stream's data through its event loop, which must be registered
before the connections that use it are opened: `events_start()` registers libvirt's own loop
and runs it in a thread of its own. A `LiveConsole` opens its own connection to the host (so it
works for guests on other hosts), calls `on_output(bytes)` from that thread with what the guest
prints, and `on_end(reason)` once when the stream ends (the guest stopped, another client took
the console, the host went away). `send` may be called from any thread.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from contextlib import suppress

import libvirt

from vms.hypervisor.adapter import _translate

_events_lock = threading.Lock()
_events_started = False


def events_start() -> None:
    """Register libvirt's event loop for this process and run it in a daemon thread (once)."""
    global _events_started
    with _events_lock:
        if _events_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _events_started = True


class LiveConsole:
    """One open console stream of one running guest."""

    READ_CHUNK = 64 * 1024

    def __init__(
        self,
        uri: str,
        domain_uuid: uuid.UUID,
        *,
        on_output: Callable[[bytes], None],
        on_end: Callable[[str], None],
    ):
        events_start()
        self._on_output, self._on_end = on_output, on_end
        self._lock = threading.Lock()
        self._ended = False
        try:
            self._conn = libvirt.open(uri)
            domain = self._conn.lookupByUUIDString(str(domain_uuid))
            if not domain.isActive():
                self._conn.close()
                raise _NotRunning()
            self._stream = self._conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
            # FORCE: a console left open by a client that went away does not lock everyone out.
            domain.openConsole(None, self._stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
            self._stream.eventAddCallback(
                libvirt.VIR_STREAM_EVENT_READABLE
                | libvirt.VIR_STREAM_EVENT_ERROR
                | libvirt.VIR_STREAM_EVENT_HANGUP,
                self._readable,
                None,
            )
        except libvirt.libvirtError as exc:
            raise _translate(exc) from exc

    def _readable(self, stream, events, _opaque) -> None:
        while True:
            with self._lock:
                if self._ended:
                    return
                try:
                    data = stream.recv(self.READ_CHUNK)
                except libvirt.libvirtError as exc:
                    self._end(exc.get_error_message() or "the console stream failed")
                    return
            if data == -2:  # nothing more for now
                if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
                    with self._lock:
                        self._end("the console was closed")
                return
            if not data:
                with self._lock:
                    self._end("the guest's console closed")
                return
            self._on_output(bytes(data))

    def send(self, data: bytes) -> None:
        """Type `data` into the console (what does not fit at once is dropped, like a serial
        line's overrun; the guest echoes what it got)."""
        with self._lock:
            if self._ended:
                return
            try:
                sent = 0
                while sent < len(data):
                    n = self._stream.send(data[sent:])
                    if n == -2:
                        break
                    sent += n
            except libvirt.libvirtError as exc:
                self._end(exc.get_error_message() or "the console stream failed")

    def close(self) -> None:
        with self._lock:
            self._end("")

    def _end(self, reason: str) -> None:
        """Close everything once (called with the lock held) and tell the owner why."""
        if self._ended:
            return
        self._ended = True
        with suppress(libvirt.libvirtError):
            self._stream.eventRemoveCallback()
        # Not in the caller's thread, which may be libvirt's event loop itself.
        threading.Thread(target=self._release, args=(reason,), daemon=True).start()

    def _release(self, reason: str) -> None:
        with suppress(libvirt.libvirtError):
            self._stream.abort()
        with suppress(libvirt.libvirtError):
            self._conn.close()
        if reason:
            self._on_end(reason)


class _NotRunning(Exception):
    pass


def console_open(uri: str, domain_uuid: uuid.UUID, **callbacks) -> LiveConsole | None:
    """The guest's live console, or None when it is not running."""
    try:
        return LiveConsole(uri, domain_uuid, **callbacks)
    except _NotRunning:
        return None
