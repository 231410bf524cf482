"""The errors the hypervisor adapter raises, each a sentence a person can act on."""

from __future__ import annotations

from core.errors import BackendRefused


class HypervisorError(BackendRefused):
    """A hypervisor call failed; the message is a sentence a person can act on."""

    who = "The hypervisor"


class HypervisorUnavailable(HypervisorError):
    """libvirtd could not be reached (the message is the service's own sentence)."""

    who = "The host"
    plain = True


class DomainNotFound(HypervisorError):
    """No domain with that UUID is defined."""


class VolumeNotFound(HypervisorError):
    """No volume with that name is in the pool."""


class PoolNotFound(HypervisorError):
    """No storage pool with that name is defined."""


class InvalidDomainState(HypervisorError):
    """The domain is not in a state that allows the action (e.g. start a running domain)."""


class MemoryMismatch(HypervisorError):
    """A memory file does not belong to this domain, or not to the disk it was paired with."""


class Interrupted(HypervisorError):
    """A long piece of work was stopped at a safe point because its caller asked (`should_stop`):
    every disk still shows what it showed before."""
