"""Which libvirt URIs a host may have.

A libvirt URI does more than name a host: its transport and query parameters can make the
client run a program (`qemu+ext`, `command=`, `netcat=`, `proxy=`), connect to any socket
(`qemu+unix`, `socket=`), read any key file or skip checking the server (`keyfile=`,
`known_hosts=`, `no_verify=`, `pkipath=`). Whoever can register a host would run those as the
service. So a host's URI is one of a few known shapes, with no parameter but `no_tty`:

- `qemu:///system` or `qemu:///session`: libvirt on this machine;
- `qemu+ssh://[user@]host[:port]/system` (or `/session`): over SSH, with the service's SSH
  configuration and keys;
- `qemu+tls://host[:port]/system`: over TLS, with the certificates in libvirt's usual place;
- `qemu+tcp://host[:port]/system`: unencrypted and unauthenticated, only when allowed
  (ALLOW_TCP_HOSTS), for a private network or a test machine;
- `test:///default`: libvirt's in-process fake, only when allowed (ALLOW_TEST_HOSTS), for tests.

`no_tty=1` only stops ssh from asking for a password on a terminal, so it is allowed.

No Django here: the model's validation (`Host.clean`) passes the settings in.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

LOCAL = {"qemu:///system", "qemu:///session"}
REMOTE_SCHEMES = {"qemu+ssh", "qemu+tls"}
PATHS = {"/system", "/session"}
ALLOWED_PARAMETERS = {"no_tty"}
# A DNS name or an address; never starting with "-", which ssh would read as an option.
HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
EXAMPLES = "qemu:///system, qemu+ssh://root@host2/system or qemu+tls://host2/system"


def libvirt_uri_problem(
    uri: str, *, allow_tcp: bool = False, allow_test: bool = False
) -> str | None:
    """Why `uri` may not be a host's libvirt URI (a sentence saying what to use), or None."""
    uri = uri or ""
    if uri in LOCAL:
        return None
    if allow_test and uri == "test:///default":
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return f"Use a libvirt URI without spaces or control characters, such as {EXAMPLES}."
    try:
        parts = urlsplit(uri)
    except ValueError:
        return f"This is not a libvirt URI; use one such as {EXAMPLES}."
    try:
        port = parts.port
    except ValueError:
        return "Give a port from 1 to 65535."
    scheme = parts.scheme.lower()
    schemes = REMOTE_SCHEMES | ({"qemu+tcp"} if allow_tcp else set())
    if scheme == "qemu+tcp" and not allow_tcp:
        return (
            "qemu+tcp has no encryption and no authentication, so it is refused; use qemu+tls "
            "or qemu+ssh (or set ALLOW_TCP_HOSTS=1 on a private network)."
        )
    if scheme.endswith(("+ext", "+unix")):
        return (
            f"{parts.scheme} URIs run a program or open a local socket of the URI's choosing, "
            f"so hosts cannot use them; use a URI such as {EXAMPLES}."
        )
    if scheme not in schemes:
        shown = parts.scheme or "this URI"
        return f"Hosts cannot be reached through {shown}; use a URI such as {EXAMPLES}."
    if not parts.hostname:
        return f"Name the host in the URI, as in {EXAMPLES}."
    if not _is_host_name(parts.hostname):
        return f"{parts.hostname!r} is not a host name or address; use one such as {EXAMPLES}."
    if parts.username is not None and not USERNAME.fullmatch(parts.username):
        return f"{parts.username!r} is not a user name; use letters, digits, '.', '_' or '-'."
    if parts.password is not None:
        return "Leave the password out of the URI; use an SSH key or TLS certificates."
    if scheme != "qemu+ssh" and parts.username is not None:
        return f"Only qemu+ssh URIs name a user; leave {parts.username!r}@ out."
    if port is not None and not 0 < port < 65536:
        return "Give a port from 1 to 65535."
    if parts.path not in PATHS:
        return "End the URI with /system or /session, as in qemu+ssh://root@host2/system."
    if parts.fragment:
        return "Leave the #… part out of the URI."
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in ALLOWED_PARAMETERS:
            return (
                f"The URI parameter {name!r} is not allowed (it can run programs, pick sockets "
                "or key files, or skip checks); leave it out, the only one allowed is no_tty."
            )
    if parts.query and not parse_qsl(parts.query, keep_blank_values=True):
        return "Leave the ?… part out of the URI, or give no_tty=1 only."
    return None


def _is_host_name(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return bool(HOSTNAME.fullmatch(name))
    return True
