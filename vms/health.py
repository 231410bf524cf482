"""Health of each libvirt host and its storage pool, for `core.health`."""

from core.health import Check


def check_libvirt(host=None) -> Check:
    from vms import hypervisor
    from vms.selectors import default_host

    host = host or default_host()
    try:
        version = host.hypervisor.version()
        pool_ok = host.hypervisor.pool_exists(host.pool_name)
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


def check_hosts() -> list[Check]:
    """One check per host in service ("host <name>"); the settings' host (as "libvirt") before
    any host is registered. It records nothing: the scheduled host check does (every minute)."""
    from vms.models import Host, HostState
    from vms.services import host_probe

    hosts = list(Host.objects.exclude(state=HostState.DISABLED))
    if not hosts:
        return [check_libvirt()]
    problems = {host.pk: host_probe(host) for host in hosts}
    # While any host works, one that does not degrades the service: the others run on.
    partial = any(problem is None for problem in problems.values())
    found = []
    for host in hosts:
        problem = problems[host.pk]
        where = f"{host.libvirt_uri} ({host.get_state_display().split(':')[0].lower()})"
        if problem:
            message = f"{where} does not work: {problem}"
            found.append(Check(f"host {host.name}", False, message, partial=partial))
        else:
            found.append(Check(f"host {host.name}", True, f"{where} answers; its pool is up."))
    return found
