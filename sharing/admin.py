from django.contrib import admin, messages

from sharing import services
from sharing.models import Invitation, Share


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ["snapshot", "owner", "recipient", "invitation", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["snapshot__name", "owner__username", "recipient__username"]
    list_select_related = ["snapshot", "owner", "recipient", "invitation"]
    raw_id_fields = ["snapshot", "recipient", "invitation"]
    readonly_fields = ["owner", "created_at", "revoked_at", "revoked_with_invitation"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # shares are made by their snapshot's owner, who is then shown as such

    @admin.action(description="Revoke the selected shares (started VMs keep running)")
    def revoke(self, request, queryset):
        ended = sum(services.share_revoke(share=share) for share in queryset)
        messages.success(request, f"Revoked {ended} share(s).")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["snapshot", "owner", "uses", "max_uses", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["snapshot__name", "owner__username", "code"]
    list_select_related = ["snapshot", "owner"]
    raw_id_fields = ["snapshot"]
    readonly_fields = ["owner", "code", "uses", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected invitations and the shares made with them")
    def revoke(self, request, queryset):
        ended = sum(services.invitation_revoke(invitation=inv) for inv in queryset.active())
        messages.success(request, f"Revoked; {ended} share(s) made with them ended.")
