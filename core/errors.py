"""Errors a user can see. Each message is a sentence that says what to do next."""


class ServiceError(Exception):
    """A request that cannot be carried out as asked; the message is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


class Busy(ServiceError):
    """Another operation already holds the VM."""

    def __init__(self, operation):
        self.operation = operation
        if operation is None:
            super().__init__("VM is busy with another operation; try again when it finishes.")
        else:
            super().__init__(
                f"VM is busy: {operation.get_kind_display().lower()} "
                f"({operation.get_state_display().lower()}); try again when it finishes."
            )


class InvalidState(ServiceError):
    """The object is not in a state that allows the action."""


class LimitExceeded(ServiceError):
    """The account's plan does not allow more."""


class Unavailable(ServiceError):
    """A part the request needs (a VM's host) does not answer right now; try again later."""


class RateLimited(ServiceError):
    """Too many requests of one kind in a short time."""


class OperationFailed(ServiceError):
    """Raised inside a running operation to end it as failed with this message."""


class BackendRefused(Exception):
    """A system the service drives (libvirt) refused or failed; the message says what it said.
    An operation that meets one fails with "<who> refused: <message>"."""

    who = "A backend"
