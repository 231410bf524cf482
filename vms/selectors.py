"""Which host a VM goes to. Reads only: nothing here changes a row or talks to libvirt, and
nothing here restricts by owner (querysets do that: `VM.objects.owned_by(user)`)."""

from django.conf import settings

from core.installation import installation_short
from vms.models import Host

DEFAULT_HOST_NAME = "local"


def pool_name_from_settings() -> str:
    """The storage pool's name: STORAGE_POOL, or one named for this installation."""
    return settings.STORAGE_POOL or f"koding-snapshots-{installation_short()}"


def host_from_settings() -> Host:
    """The host this installation's settings describe (unsaved): its pool and console logs in
    folders of STORAGE_DIR named like the pool, so that installations sharing a STORAGE_DIR
    keep apart."""
    pool = pool_name_from_settings()
    return Host(
        name=DEFAULT_HOST_NAME,
        libvirt_uri=settings.LIBVIRT_URI,
        domain_type=settings.LIBVIRT_DOMAIN_TYPE,
        pool_name=pool,
        pool_path=str(settings.STORAGE_DIR / pool),
        console_dir=str(settings.STORAGE_DIR / f"{pool}-console"),
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
