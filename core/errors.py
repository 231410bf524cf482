"""Errors a user can see. Each message is a sentence that says what to do next."""

import re


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


class NameTaken(InvalidState):
    """The name is another object's of the same owner: a conflict with what exists (409 in the
    API; on a page, an error beside the form's `field`), not bad input."""

    def __init__(self, message: str, *, field: str = "name"):
        super().__init__(message)
        self.field = field


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
    An operation that meets one fails saying who refused what, in words for its owner; the
    backend's own words are kept for staff, unless the message is already the service's own
    sentence (`plain`), which the owner reads as it is."""

    who = "A backend"
    plain = False


# --- What an error may say to its owner -------------------------------------------------------
# A backend's words can carry a host's libvirt URI or address ("libvirt at
# qemu+ssh://root@10.0.0.7/system does not answer"), which are staff's business only. Apps that
# know such addresses register a function giving (text to hide, what to say instead) pairs;
# `public_error` applies them, then hides any other URI.
_ADDRESS_NAMES: list = []
_ANY_URI = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s,;()<>'\"]*")


def register_address_names(names) -> None:
    """`names() -> [(text, replacement)]`: addresses to hide in errors shown to users."""
    if names not in _ADDRESS_NAMES:
        _ADDRESS_NAMES.append(names)


def public_error(text: str) -> str:
    """`text` with every host URI and address replaced by the host's name (any other URI by
    "the host"), for errors recorded where a host's users can read them."""
    if not text:
        return text
    shown = {secret: name for names in _ADDRESS_NAMES for secret, name in names() if secret}
    if shown:
        # One pass, longest first: a URI is replaced whole, not the address inside it, and no
        # replacement is looked at again.
        secrets = sorted(shown, key=len, reverse=True)
        pattern = r"(?<![\w.-])(?:" + "|".join(map(re.escape, secrets)) + r")(?![\w-])"
        text = re.sub(pattern, lambda match: shown[match.group(0)], text)
    return _ANY_URI.sub("the host", text)
