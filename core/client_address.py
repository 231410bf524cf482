"""The address a request comes from, the one every limit by address counts against.

The connection's own address (REMOTE_ADDR) is the client's unless it is one of TRUSTED_PROXIES.
Only then is X-Forwarded-For read, from its right end (what the nearest proxy appended) leftwards,
past the trusted proxies, to the first address none of them is: hops further left were written
by the client itself and prove nothing. Without TRUSTED_PROXIES the header is ignored, since
anyone can send it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _parse(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket counts as itself.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_address(request) -> str | None:
    """The client's address (see the module's docstring); None when the request has none."""
    remote = _parse(request.META.get("REMOTE_ADDR", "") or "")
    if remote is None:
        return None
    proxies = _networks(tuple(settings.TRUSTED_PROXIES))

    def trusted(address: IPAddress) -> bool:
        return any(address in network for network in proxies)

    if not trusted(remote):
        return str(remote)
    client = remote
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # unreadable: the last proxy we trust is as far as we can see
        client = address
        if not trusted(address):
            break
    return str(client)
