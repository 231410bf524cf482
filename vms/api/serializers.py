from rest_framework import serializers

from koding_snapshots.api.common import CONTROL_BUT_TAB, NameField, TextField
from vms.models import VM, Image
from vms.services import CONSOLE_LINE_MAX, GIB, NAME_MAX


class ImageSerializer(serializers.ModelSerializer):
    min_disk_gib = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["slug", "name", "description", "min_disk_gib", "created_at"]
        read_only_fields = fields

    def get_min_disk_gib(self, image) -> int:
        return -(-image.min_disk_bytes // GIB)


class VMSerializer(serializers.ModelSerializer):
    image = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    disk_gib = serializers.SerializerMethodField()
    current_snapshot = serializers.UUIDField(
        source="current_snapshot_id", read_only=True, allow_null=True
    )
    source_snapshot = serializers.UUIDField(
        source="source_snapshot_id", read_only=True, allow_null=True
    )

    class Meta:
        model = VM
        fields = [
            "id",
            "name",
            "state",
            "image",
            "vcpus",
            "memory_mib",
            "disk_gib",
            "mac_address",
            "current_snapshot",
            "source_snapshot",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_disk_gib(self, vm) -> float:
        return round(vm.disk_bytes / GIB, 2)


class VMCreateSerializer(serializers.Serializer):
    name = NameField(max_length=NAME_MAX)
    image = serializers.SlugField(max_length=64, help_text="An image's slug (see /api/images/).")
    vcpus = serializers.IntegerField(default=1, min_value=1, max_value=VM.MAX_VCPUS)
    memory_mib = serializers.IntegerField(
        default=256, min_value=VM.MIN_MEMORY_MIB, max_value=VM.MAX_MEMORY_MIB
    )
    disk_gib = serializers.IntegerField(default=4, min_value=1, max_value=VM.MAX_DISK_BYTES // GIB)


class VMUpdateSerializer(serializers.Serializer):
    name = NameField(max_length=NAME_MAX, required=False)


class VMStopSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False, help_text="Pull the plug instead of pressing the power button."
    )


class ConsoleOutputSerializer(serializers.Serializer):
    output = serializers.CharField(help_text="The last of what the guest printed.")


class ConsoleInputSerializer(serializers.Serializer):
    line = TextField(
        max_length=CONSOLE_LINE_MAX,
        forbid=CONTROL_BUT_TAB,
        allow_blank=True,
        trim_whitespace=False,
        help_text="One line; a tab is the only control character it may hold.",
    )


class ConsoleSentSerializer(serializers.Serializer):
    detail = serializers.CharField()
