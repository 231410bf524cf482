"""This app's steps of `manage.py bootstrap`: the local host with its pool, then the image."""

from django.core.exceptions import ValidationError
from django.core.management import call_command

from core.bootstrap import BootstrapError, Options


def host(out, options: Options) -> None:
    from vms import hypervisor
    from vms.services import host_ensure_default

    try:
        found = host_ensure_default()
    except ValidationError as exc:
        raise BootstrapError(f"LIBVIRT_URI cannot be used: {' '.join(exc.messages)}") from exc
    except hypervisor.HypervisorError as exc:
        raise BootstrapError(f"libvirt is not ready: {exc}") from exc
    out.write(f"Host {found.name}: {found.libvirt_uri}, pool {found.pool_name!r}.")


def image(out, options: Options) -> None:
    if options.image:
        call_command("build_image", stdout=out)
