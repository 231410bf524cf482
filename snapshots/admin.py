from django.contrib import admin

from snapshots.models import Snapshot


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "source_vm_name",
        "kind",
        "pinned",
        "state",
        "size_bytes",
        "includes_memory",
        "memory_bytes",
        "quiesced",
        "created_at",
    ]
    list_filter = ["state", "kind", "pinned", "includes_memory", "quiesced", "created_at"]
    search_fields = ["name", "owner__username", "source_vm_name", "id"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner", "source_vm", "image", "layer", "parent"]
    readonly_fields = [
        "id",
        "layer",
        "size_bytes",
        "disk_bytes",
        "includes_memory",
        "memory_bytes",
        "quiesced",
        "state",
        "created_at",
        "updated_at",
    ]
    date_hierarchy = "created_at"
