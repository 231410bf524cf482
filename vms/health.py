"""Health of libvirt and the storage pool, for `core.health`."""

from core.health import Check


def check_libvirt(host=None) -> Check:
    from vms import hypervisor
    from vms.selectors import default_host

    host = host or default_host()
    try:
        version = hypervisor.version(host.libvirt_uri)
        pool_ok = hypervisor.pool_exists(host.libvirt_uri, host.pool_name)
    except hypervisor.HypervisorError as exc:
        return Check(
            "libvirt",
            False,
            f"libvirt at {host.libvirt_uri} does not answer ({exc}): start libvirtd.",
        )
    if not pool_ok:
        return Check(
            "libvirt",
            False,
            f"libvirt {version} answers, but the storage pool {host.pool_name!r} is missing "
            "or stopped: run `manage.py bootstrap`.",
        )
    return Check("libvirt", True, f"libvirt {version} answers; pool {host.pool_name!r} is up.")
