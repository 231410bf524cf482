from rest_framework import serializers

from core.api.common import FullMatchValidator, StrictCharField
from sharing.models import Invitation, Share
from sharing.services import USERNAME_MAX
from snapshots.models import Snapshot
from vms.api.serializers import IMAGE_SLUG_HELP

CODE_PATTERN = "^[A-Za-z0-9_-]+$"


class ShareSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="recipient.username", read_only=True)
    invitation = serializers.UUIDField(
        source="invitation_id",
        read_only=True,
        allow_null=True,
        help_text="The invitation it was redeemed from; null when shared by username.",
    )

    class Meta:
        model = Share
        fields = ["id", "username", "invitation", "created_at"]
        read_only_fields = fields


class ShareCreateSerializer(serializers.Serializer):
    username = StrictCharField(
        max_length=USERNAME_MAX, help_text="Who may start VMs from the snapshot."
    )


class InvitationSerializer(serializers.ModelSerializer):
    url = serializers.CharField(
        source="get_absolute_url", read_only=True, help_text="The page that redeems it."
    )

    class Meta:
        model = Invitation
        fields = ["id", "code", "url", "max_uses", "uses", "expires_at", "created_at"]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    max_uses = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=Invitation.MAX_USES_MAX,
        help_text="How many users may redeem it; null for any number.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When it stops working (in the future); null for never.",
    )


class RedeemSerializer(serializers.Serializer):
    code = StrictCharField(
        max_length=Invitation.CODE_MAX,
        trim_whitespace=False,
        validators=[
            FullMatchValidator(
                CODE_PATTERN, message="An invitation code has letters, digits, - and _."
            )
        ],
    )


class SharedSnapshotSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    image = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text=IMAGE_SLUG_HELP
    )
    shared_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Snapshot
        fields = [
            "id",
            "name",
            "description",
            "owner",
            "image",
            "disk_bytes",
            "created_at",
            "shared_at",
        ]
        read_only_fields = fields
