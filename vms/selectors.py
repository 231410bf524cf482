"""Which host a VM goes to. Reads only: nothing here changes a row or talks to libvirt, and
nothing here restricts by owner (querysets do that: `VM.objects.owned_by(user)`)."""

from django.conf import settings

from vms.models import Host

DEFAULT_HOST_NAME = "local"


def host_from_settings() -> Host:
    """The host this installation's settings describe (unsaved)."""
    return Host(
        name=DEFAULT_HOST_NAME,
        libvirt_uri=settings.LIBVIRT_URI,
        domain_type=settings.LIBVIRT_DOMAIN_TYPE,
        pool_name=settings.STORAGE_POOL,
        pool_path=str(settings.STORAGE_DIR / settings.STORAGE_POOL),
        console_dir=str(settings.STORAGE_DIR / "console"),
    )


def default_host() -> Host:
    """The host new VMs go to: the registered local host, or the one the settings describe."""
    return Host.objects.filter(name=DEFAULT_HOST_NAME).first() or host_from_settings()


def host_address_names() -> list[tuple[str, str]]:
    """(what to hide, what to say) for each host's libvirt URI and address: "host <name>", as
    its users know it (see `core.errors.public_error`)."""
    from urllib.parse import urlsplit

    pairs = []
    for name, uri in Host.objects.values_list("name", "libvirt_uri"):
        shown = f"host {name}"
        pairs.append((uri, shown))
        try:
            parts = urlsplit(uri)
        except ValueError:
            continue
        pairs += [(parts.netloc, shown), (parts.hostname or "", shown)]
    return pairs
