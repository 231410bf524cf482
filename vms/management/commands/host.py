from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.errors import ServiceError
from vms import hypervisor
from vms.models import VM, Host, HostState, VMState
from vms.placement import host_usage


class Command(BaseCommand):
    help = (
        "Hosts that run VMs: list them with their load, add one by its libvirt URI, set one "
        "enabled, draining or disabled, and move the stopped VMs off one."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="Every host, its state, whether it answers, and its load.")
        add = sub.add_parser("add", help="Register a host (its pools are made through libvirt).")
        add.add_argument("name")
        add.add_argument("uri", help="e.g. qemu+ssh://root@host2/system or qemu+tls://host2/system")
        add.add_argument("--memory-mib", type=int, help="Default: the host's memory.")
        add.add_argument("--vcpus", type=int, help="Default: its CPUs times HOST_VCPU_RATIO.")
        add.add_argument(
            "--disk-gib", type=int, help="Default: its pool's disk times HOST_DISK_RATIO."
        )
        add.add_argument("--domain-type", choices=["qemu", "kvm"])
        state = sub.add_parser("state", help="Set a host enabled, draining or disabled.")
        state.add_argument("name")
        state.add_argument("state", choices=list(HostState.values))
        drain = sub.add_parser("move-stopped", help="Move a host's stopped VMs to other hosts.")
        drain.add_argument("name")

    def handle(self, *args, action, **options):
        getattr(self, action.replace("-", "_"))(**options)

    def list(self, **options):
        hosts = list(Host.objects.all())
        usage = host_usage(hosts)
        for host in hosts:
            used = usage[host.pk]
            answer = "answers" if host.reachable else f"DOES NOT ANSWER: {host.last_error}"
            self.stdout.write(
                f"{host.name:12} {host.state:9} {host.libvirt_uri}  {answer}\n"
                f"{'':12} {used['vms']} VM(s); memory {used['memory_mib']}/{host.memory_mib} MiB, "
                f"vCPUs {used['vcpus']}/{host.vcpus}, "
                f"disk {used['disk_bytes'] // 1024**3}/{host.disk_gib} GiB"
            )

    def add(self, *, name, uri, memory_mib, vcpus, disk_gib, domain_type, **options):
        from vms.services import host_add

        try:
            host = host_add(
                name=name,
                libvirt_uri=uri,
                memory_mib=memory_mib,
                vcpus=vcpus,
                disk_gib=disk_gib,
                domain_type=domain_type,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except hypervisor.HypervisorError as exc:
            raise CommandError(f"{uri} cannot be used: {exc}") from None
        self.stdout.write(
            f"Host {host.name} added: {host.memory_mib} MiB, {host.vcpus} vCPUs, "
            f"{host.disk_gib} GiB; pool {host.pool_name!r} at {host.pool_path}."
        )

    def state(self, *, name, state, **options):
        if not Host.objects.filter(name=name).update(state=state):
            raise CommandError(f"There is no host {name!r}.")
        self.stdout.write(f"Host {name} is {state}.")

    def move_stopped(self, *, name, **options):
        from vms.services import vm_move

        host = Host.objects.filter(name=name).first()
        if host is None:
            raise CommandError(f"There is no host {name!r}.")
        for vm in VM.objects.filter(host=host, state=VMState.STOPPED).select_related("owner"):
            try:
                operation = vm_move(vm=vm, user=None)
            except ServiceError as exc:
                self.stdout.write(f"{vm.name} ({vm.owner}): not moved: {exc}")
            else:
                self.stdout.write(f"{vm.name} ({vm.owner}): {operation.target_name}, queued.")
