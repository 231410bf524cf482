"""Task-queue entry points of the vms app. Thin: load by id, call the adapter or a service."""

from vms.models import VM


def console_send(vm_id: str, line: str) -> None:
    """Type a line into a running guest's console."""
    vm = VM.objects.select_related("host").filter(pk=vm_id).first()
    if vm is None:
        return
    vm.host.hypervisor.console_send(vm.domain_uuid, (line + "\n").encode())


def flatten_deep_chains() -> None:
    """Scheduled: start a flatten for VMs whose disk chains grew too deep."""
    from vms.services import vms_flatten_deep_chains

    vms_flatten_deep_chains()


def merge_layers() -> None:
    """Scheduled: start a merge for every layer that only one layer builds on (a deleted
    snapshot's), so that disk chains stay as short as the snapshots kept."""
    from vms.services import layers_merge_pending

    layers_merge_pending()


def reconcile() -> str:
    """Scheduled: compare the database with libvirt and repair drift."""
    from vms.reconciler import reconcile as run

    return run().text()


def check_hosts() -> dict:
    """Record which hosts answer (their VMs' pages say so when one does not), and forward the
    running VMs' SSH ports again (what a firewall reload or a restarted libvirtd dropped)."""
    from vms.publishing import publish_sync
    from vms.services import hosts_check

    checked = hosts_check()
    publish_sync()
    return checked
