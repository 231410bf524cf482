from rest_framework import serializers

from accounts.models import SshKey
from accounts.ssh_keys import MAX_BYTES
from core.api.common import CONTROL, TextField


class SshKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = SshKey
        fields = ["id", "title", "key_type", "fingerprint", "bits", "public_key", "created_at"]
        read_only_fields = fields


class SshKeyCreateSerializer(serializers.Serializer):
    title = TextField(
        max_length=SshKey.TITLE_MAX,
        forbid=CONTROL,
        required=False,
        allow_blank=True,
        default="",
        help_text="What the key is for; empty or left out: the key's comment.",
    )
    public_key = TextField(
        max_length=MAX_BYTES,
        help_text="One line of a .pub file: `type base64 [comment]`, of type ssh-ed25519, "
        "ecdsa-sha2-nistp256/384/521, ssh-rsa (2048 bits or more), "
        "sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com.",
    )
