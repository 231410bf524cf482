"""The steps of `manage.py bootstrap`, registered by the apps that own them (in their
AppConfig.ready) with the position each takes: the host before the image, and so on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Options:
    """What the command was asked: `image` is False with --no-image."""

    image: bool


class BootstrapError(Exception):
    """A step that cannot be done; the message says what to do."""


Step = Callable[[TextIO, Options], None]
_STEPS: list[tuple[int, Step]] = []


def register(step: Step, *, order: int) -> None:
    if all(existing is not step for _, existing in _STEPS):
        _STEPS.append((order, step))


def steps() -> list[Step]:
    return [step for _, step in sorted(_STEPS, key=lambda pair: pair[0])]
