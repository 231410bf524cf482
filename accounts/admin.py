from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.shortcuts import render

from accounts.models import ApiToken, Plan, SshKey, User
from accounts.services import plan_change


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "max_snapshots", "max_snapshot_bytes", "max_vms", "is_default"]
    list_editable = ["max_snapshots", "max_snapshot_bytes", "max_vms"]
    ordering = ["position"]


class PlanChoiceForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.all())


SSH_KEY_FIELDS = ["title", "key_type", "bits", "fingerprint", "public_key", "created_at"]


class SshKeyInline(admin.TabularInline):
    """A user's SSH keys on their page: staff may delete one, never add or edit a key."""

    model = SshKey
    fields = [*SSH_KEY_FIELDS[:4], "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = True
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class AccountAdmin(UserAdmin):
    list_display = ["username", "email", "plan", "is_staff", "is_active", "date_joined"]
    list_filter = ["plan", "is_staff", "is_active"]
    list_select_related = ["plan"]
    fieldsets = [*UserAdmin.fieldsets, ("Plan", {"fields": ["plan"]})]
    inlines = [SshKeyInline]
    actions = ["change_plan"]

    @admin.action(description="Move the selected users to another plan")
    def change_plan(self, request, queryset):
        if "apply" in request.POST:
            form = PlanChoiceForm(request.POST)
            if form.is_valid():
                plan = form.cleaned_data["plan"]
                for user in queryset:
                    plan_change(user=user, plan=plan)
                self.message_user(request, f"Moved {queryset.count()} user(s) to {plan.name}.")
                return None
        else:
            form = PlanChoiceForm()
        return render(
            request,
            "admin/change_plan.html",
            {
                "form": form,
                "users": queryset,
                "opts": self.model._meta,
                **self.admin_site.each_context(request),
            },
        )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    search_fields = ["name", "user__username", "prefix"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["user", "prefix", "key_hash", "created_at", "last_used_at"]


@admin.register(SshKey)
class SshKeyAdmin(admin.ModelAdmin):
    """Keys are added by their owners only (through the checks in `accounts.ssh_keys`); staff see
    them, find them by user or fingerprint, and may delete one."""

    list_display = ["title", "owner", "key_type", "bits", "fingerprint", "created_at"]
    list_filter = ["key_type"]
    search_fields = ["owner__username", "title", "fingerprint"]
    list_select_related = ["owner"]
    fields = ["owner", *SSH_KEY_FIELDS]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False
