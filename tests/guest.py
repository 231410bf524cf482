"""Talking to a real guest through its serial console, as a person at the console would."""

from __future__ import annotations

import itertools
import time

import pytest

from vms import image_build
from vms.models import VM
from vms.services import console_read, console_send

_markers = itertools.count(1)


def wait_for_boot(vm: VM, *, boots: int = 1, timeout: float = 90) -> None:
    """Wait until the guest has come up `boots` times in all (its console log keeps them all)."""
    deadline = time.monotonic() + timeout
    while console_read(vm=vm, max_bytes=10**7).count(image_build.READY_LINE) < boots:
        if time.monotonic() > deadline:
            pytest.fail(f"The guest did not boot in {timeout} s:\n{console_read(vm=vm)[-2000:]}")
        time.sleep(0.3)


def run(vm: VM, command: str, *, timeout: float = 30) -> str:
    """Run a shell command in the guest and return what it printed.

    The markers around the command are typed with an empty pair of quotes inside them, so the
    terminal's echo of the typed line never matches what the shell prints.
    """
    n = next(_markers)
    begin, end = f"@B{n}@", f"@E{n}@"
    line = f'echo @B""{n}@; {command}; echo @E""{n}@'
    deadline = time.monotonic() + timeout
    next_send = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            console_send(vm=vm, user=vm.owner, line=line)
            next_send = time.monotonic() + 10  # typed too early (shell not up yet): type again
        text = console_read(vm=vm)
        start = text.rfind(begin + "\n")
        if start != -1 and end in text[start:]:
            return text[start + len(begin) + 1 : text.index(end, start)].strip("\n")
        time.sleep(0.2)
    pytest.fail(f"No answer to {command!r} in {timeout} s:\n{console_read(vm=vm)[-2000:]}")
