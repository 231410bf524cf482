from django.contrib import admin, messages
from django.db import transaction

from core.errors import ServiceError
from vms.models import VM, Host, Image, Layer, OrphanSighting, ReconcileRun
from vms.services import vm_flatten, vm_move, vm_repair


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    """Hosts are added here (or with `manage.py host add`): their pools are made through libvirt
    and their capacity is read from them when left empty."""

    list_display = [
        "name",
        "libvirt_uri",
        "state",
        "reachable",
        "checked_at",
        "memory_mib",
        "vcpus",
        "disk_gib",
    ]
    list_filter = ["state", "reachable", "domain_type"]
    list_editable = ["state"]
    readonly_fields = ["reachable", "checked_at", "last_error", "created_at"]
    actions = ["check_now"]

    def get_readonly_fields(self, request, obj=None):
        # Pools keep their folders for good: layers name their backing files by path.
        fixed = ["pool_name", "pool_path", "console_dir"] if obj else []
        return [*self.readonly_fields, *fixed]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # The admin's save is one transaction; libvirt is called once it has committed.
        transaction.on_commit(lambda: self._prepare(request, obj))

    def _prepare(self, request, host):
        from vms import hypervisor
        from vms.services import host_prepare

        try:
            host_prepare(host)
        except hypervisor.HypervisorError as exc:
            message = f"Saved, but {host.name}'s pools could not be made: {exc}"
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Check whether the selected hosts answer")
    def check_now(self, request, queryset):
        from vms.services import host_check

        for host in queryset:
            problem = host_check(host)
            if problem:
                self.message_user(request, f"{host.name}: {problem}", messages.ERROR)
            else:
                self.message_user(request, f"{host.name} answers.", messages.SUCCESS)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "host", "is_public", "created_at"]
    list_filter = ["is_public", "host"]
    search_fields = ["slug", "name"]
    list_select_related = ["host"]
    raw_id_fields = ["layer"]
    readonly_fields = ["layer", "kernel_volume", "initrd_volume", "created_at"]


@admin.register(Layer)
class LayerAdmin(admin.ModelAdmin):
    list_display = ["id", "host", "state", "depth", "allocation", "virtual_size", "created_at"]
    list_filter = ["state", "host"]
    search_fields = ["id"]
    list_select_related = ["host"]
    raw_id_fields = ["parent"]
    # The chain is the database's record of what is on disk: never hand-edited.
    readonly_fields = ["id", "host", "parent", "depth", "virtual_size", "allocation", "created_at"]


@admin.register(VM)
class VMAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "state",
        "image",
        "host",
        "vcpus",
        "memory_mib",
        "chain_depth",
        "created_at",
    ]
    list_filter = ["state", "host", "image"]
    search_fields = ["name", "owner__username", "id", "domain_uuid"]
    list_select_related = ["owner", "image", "host", "active_layer"]
    raw_id_fields = ["owner", "active_layer", "source_snapshot", "current_snapshot"]
    readonly_fields = [
        "id",
        "domain_uuid",
        "mac_address",
        "active_layer",
        "host",
        "state",
        "created_at",
        "updated_at",
    ]
    actions = ["flatten", "repair", "move"]

    @admin.display(description="chain depth", ordering="active_layer__depth")
    def chain_depth(self, vm):
        return vm.active_layer.depth if vm.active_layer else None

    @admin.action(description="Flatten the disk chain of the selected VMs")
    def flatten(self, request, queryset):
        self._start_each(request, queryset, vm_flatten, "flattening")

    @admin.action(description="Repair the selected VMs in error: define them again from their disk")
    def repair(self, request, queryset):
        self._start_each(request, queryset, vm_repair, "repairing")

    @admin.action(description="Move the selected stopped VMs to another host (placement chooses)")
    def move(self, request, queryset):
        self._start_each(request, queryset, vm_move, "moving")

    def _start_each(self, request, queryset, service, doing: str) -> None:
        """Start `service` on each VM; say which were refused, and why."""
        started = 0
        for vm in queryset:
            try:
                service(vm=vm, user=request.user)
                started += 1
            except ServiceError as exc:
                self.message_user(request, f"{vm}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Started {doing} {started} VM(s).")


@admin.register(ReconcileRun)
class ReconcileRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "finished_at", "problems"]
    readonly_fields = ["started_at", "finished_at", "problems", "summary"]
    list_filter = ["started_at"]


@admin.register(OrphanSighting)
class OrphanSightingAdmin(admin.ModelAdmin):
    list_display = ["kind", "name", "host", "first_seen"]
    list_filter = ["kind", "host"]
    search_fields = ["name"]
    list_select_related = ["host"]
