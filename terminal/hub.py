"""The consoles this process has open: one per VM, shared by every terminal open on that VM, so
two browser tabs see the same screen (a new one first gets the recent output to draw it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from vms.hypervisor.consoles import console_open

# What a terminal that joins is sent first: enough output to redraw a full screen.
BACKLOG_BYTES = 64 * 1024
# Output waiting for a terminal that does not read it; past this it is dropped, not the others.
QUEUE_ITEMS = 1024
# The console is opened again when something else took it (the API's line input does, for a
# moment), but not more often than this within REOPEN_WINDOW seconds.
REOPEN_LIMIT = 5
REOPEN_WINDOW = 10.0
REOPEN_DELAY = 0.5


class NotRunning(Exception):
    """The guest is not running: it has no console to open."""


@dataclass(frozen=True)
class Ended:
    """The console ended for good; `reason` is a sentence for the person."""

    reason: str


class SharedConsole:
    def __init__(self, hub: Hub, key: tuple[str, uuid.UUID]):
        self.hub, self.key = hub, key
        self.viewers: set[asyncio.Queue] = set()
        self.backlog = bytearray()
        self.console = None
        self.reopened: list[float] = []
        self.opening = asyncio.Lock()

    async def join(self) -> asyncio.Queue:
        async with self.opening:
            if self.console is None:
                await self._open()
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_ITEMS)
        if self.backlog:
            queue.put_nowait(bytes(self.backlog))
        self.viewers.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue) -> None:
        self.viewers.discard(queue)
        if not self.viewers:
            self._close()

    def send(self, data: bytes) -> None:
        if self.console is not None:
            self.console.send(data)

    async def _open(self) -> None:
        uri, domain_uuid = self.key
        loop = asyncio.get_running_loop()
        console = await asyncio.to_thread(
            console_open,
            uri,
            domain_uuid,
            on_output=lambda data: loop.call_soon_threadsafe(self._output, data),
            on_end=lambda reason: loop.call_soon_threadsafe(self._lost, reason),
        )
        if console is None:
            raise NotRunning
        self.console = console

    def _output(self, data: bytes) -> None:
        self.backlog += data
        del self.backlog[:-BACKLOG_BYTES]
        for queue in list(self.viewers):
            if queue.full():
                continue  # that one is not reading: it misses output, the others do not
            queue.put_nowait(data)

    def _lost(self, reason: str) -> None:
        """The stream ended: open it again if the guest still runs, else tell the viewers."""
        self.console = None
        if not self.viewers:
            return
        now = time.monotonic()
        self.reopened = [t for t in self.reopened if now - t < REOPEN_WINDOW] + [now]
        if len(self.reopened) > REOPEN_LIMIT:
            self._end("Another program keeps taking this console; close it and reconnect.")
            return
        asyncio.get_running_loop().call_later(
            REOPEN_DELAY, lambda: asyncio.ensure_future(self._reopen())
        )

    async def _reopen(self) -> None:
        try:
            async with self.opening:
                if not self.viewers or self.console is not None:
                    return
                await self._open()
        except NotRunning:
            self._end("The VM stopped; its terminal ends with it.")
        except Exception:  # the host went away, or the domain did
            self._end("The console cannot be reached any more; reconnect once the VM runs.")

    def _end(self, reason: str) -> None:
        for queue in list(self.viewers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(Ended(reason))
        self.viewers.clear()
        self._close()

    def _close(self) -> None:
        if self.console is not None:
            self.console.close()
            self.console = None
        self.hub.consoles.pop(self.key, None)


class Hub:
    def __init__(self):
        self.consoles: dict[tuple[str, uuid.UUID], SharedConsole] = {}

    def console(self, uri: str, domain_uuid: uuid.UUID) -> SharedConsole:
        key = (uri, domain_uuid)
        if key not in self.consoles:
            self.consoles[key] = SharedConsole(self, key)
        return self.consoles[key]


hub = Hub()
