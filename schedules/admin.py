from django import forms
from django.contrib import admin

from schedules import cadence, services
from schedules.models import PolicyRun, SnapshotPolicy


class SnapshotPolicyForm(forms.ModelForm):
    class Meta:
        model = SnapshotPolicy
        fields = ["vm", "enabled", "schedule", "timezone", *services.KEEP_FIELDS]

    def clean(self):
        data = super().clean()
        cadence.cron_for(data.get("schedule") or "")
        cadence.zone(data.get("timezone") or "")
        return data


class PolicyRunInline(admin.TabularInline):
    model = PolicyRun
    extra = 0
    can_delete = False
    fields = ["slot", "outcome", "message", "pruned", "snapshot", "operation", "created_at"]
    readonly_fields = fields
    ordering = ["-slot"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SnapshotPolicy)
class SnapshotPolicyAdmin(admin.ModelAdmin):
    list_display = ["vm", "owner", "enabled", "schedule", "timezone", "next_run_at", "last_run_at"]
    list_filter = ["enabled"]
    search_fields = ["vm__name", "owner__username", "schedule"]
    list_select_related = ["vm", "owner"]
    raw_id_fields = ["vm"]
    readonly_fields = ["owner", "cron", "next_run_at", "last_run_at", "created_at", "updated_at"]
    inlines = [PolicyRunInline]
    form = SnapshotPolicyForm

    def get_readonly_fields(self, request, obj=None):
        # A policy belongs to its VM (its owner follows); choose the VM only when adding.
        return [*self.readonly_fields, "vm"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        keep = {field: getattr(obj, field) for field in services.KEEP_FIELDS}
        saved = services.policy_set(
            vm=obj.vm,
            enabled=obj.enabled,
            schedule=obj.schedule,
            timezone_name=obj.timezone,
            **keep,
        )
        # The admin goes on with `obj` (its log entry, the page it redirects to).
        obj.pk, obj._state.adding = saved.pk, False


@admin.register(PolicyRun)
class PolicyRunAdmin(admin.ModelAdmin):
    list_display = ["policy", "slot", "outcome", "message", "pruned"]
    list_filter = ["outcome"]
    raw_id_fields = ["policy", "snapshot", "operation"]
    date_hierarchy = "slot"
