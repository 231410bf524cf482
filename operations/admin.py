from django.contrib import admin, messages
from django.utils.html import format_html

from core.errors import ServiceError
from operations.models import IdempotentRequest, Operation, WorkerHeartbeat
from operations.services import PERIODIC_TASKS, operation_mark_failed, operation_retry


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = [
        "kind",
        "target_name",
        "owner",
        "state_badge",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
        "worker",
    ]
    list_filter = ["state", "kind", "created_at"]
    search_fields = ["target_name", "owner__username", "error", "id"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner", "requester"]
    readonly_fields = [f.name for f in Operation._meta.fields]
    date_hierarchy = "created_at"
    actions = ["retry", "mark_failed", "run_reconciler"]

    @admin.display(description="state", ordering="state")
    def state_badge(self, operation):
        colour = {"failed": "#cf222e", "succeeded": "#1a7f37"}.get(operation.state, "#9a6700")
        return format_html('<b style="color:{}">{}</b>', colour, operation.get_state_display())

    @admin.action(description="Retry the selected failed operations")
    def retry(self, request, queryset):
        done = 0
        for operation in queryset:
            try:
                operation_retry(operation)
                done += 1
            except ServiceError as exc:
                self.message_user(request, f"{operation}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Queued {done} operation(s) again.")

    @admin.action(description="Mark the selected active operations as failed (and repair)")
    def mark_failed(self, request, queryset):
        reason = f"Marked failed by {request.user.username}."
        done = sum(operation_mark_failed(op, reason=reason) for op in queryset)
        self.message_user(request, f"Marked {done} operation(s) as failed.")

    @admin.action(description="Run the reconciler now")
    def run_reconciler(self, request, queryset):
        from django_q.tasks import async_task

        # The reconciler belongs to the app that registered its schedule.
        async_task(PERIODIC_TASKS["reconcile"][0], task_name="reconcile from admin")
        self.message_user(
            request, "The reconciler is running; its report appears under Reconcile runs."
        )


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["worker", "last_seen"]
    readonly_fields = ["worker", "last_seen"]


@admin.register(IdempotentRequest)
class IdempotentRequestAdmin(admin.ModelAdmin):
    list_display = ["key", "owner", "status_code", "created_at"]
    search_fields = ["key", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = [
        "owner",
        "key",
        "fingerprint",
        "status_code",
        "body",
        "location",
        "created_at",
    ]
