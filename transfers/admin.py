from django.contrib import admin, messages

from transfers.models import Export
from transfers.services import export_delete


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["snapshot_name", "owner", "state", "size_bytes", "created_at", "expires_at"]
    list_filter = ["state"]
    search_fields = ["snapshot_name", "owner__username", "id"]
    readonly_fields = [f.name for f in Export._meta.fields]
    actions = ["delete_files"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Delete the selected exports and their files")
    def delete_files(self, request, queryset):
        done = 0
        for export in queryset:
            try:
                export_delete(export=export)
            except Exception as exc:  # a single refusal must not stop the others
                messages.error(request, f"{export}: {exc}")
            else:
                done += 1
        messages.success(request, f"{done} export(s) deleted.")
