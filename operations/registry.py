"""The kinds of operation, each registered by the app that owns it (in its AppConfig.ready): its
label, its job (the function a worker runs for it), its repair (what finishes or undoes one
whose worker died) and the sentence that tells its owner it is done. This app names none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class OperationType:
    kind: str
    label: str
    job: Callable  # (operation) -> dict | None: the work, in a worker
    repair: Callable  # (operation) -> str: what was done about a half-done one, in a sentence
    # Work the service does on its own (merging, flattening): it never stands in a user's way
    # (see `operations.services.housekeeping_lock`).
    housekeeping: bool = False
    # What its owner reads once it has succeeded; "{target}" stands for its target's name.
    done: str = ""


_TYPES: dict[str, OperationType] = {}


class DuplicateKind(Exception):
    """Two apps (or one, twice with different jobs) registered the same kind of operation."""


def register(
    kind: str,
    label: str,
    *,
    job: Callable,
    repair: Callable,
    housekeeping: bool = False,
    done: str = "",
) -> None:
    """Register a kind of operation. Registering the very same kind again changes nothing; a
    different one under a kind already taken is refused (it would silently replace the job)."""
    wanted = OperationType(str(kind), str(label), job, repair, housekeeping, done)
    found = _TYPES.setdefault(wanted.kind, wanted)
    if found != wanted:
        raise DuplicateKind(f"The operation kind {wanted.kind!r} is registered already.")


def registered(kind: str) -> OperationType:
    return _TYPES[kind]


def done_sentence(kind: str, target: str) -> str:
    """What the owner reads once an operation of `kind` on `target` has succeeded."""
    found = _TYPES.get(str(kind))
    if found is None or not found.done:
        label = found.label if found else str(kind)
        return f"{label}: done ({target})."
    return found.done.format(target=target)


def is_housekeeping(kind: str) -> bool:
    found = _TYPES.get(str(kind))
    return found is not None and found.housekeeping


def choices() -> list[tuple[str, str]]:
    """The kinds as model choices (the field's choices are this callable)."""
    return sorted((t.kind, t.label) for t in _TYPES.values())


def kinds() -> list[str]:
    return sorted(_TYPES)
