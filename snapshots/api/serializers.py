from rest_framework import serializers

from accounts.models import Plan
from core.api.common import NameField, TextField
from snapshots.models import Snapshot
from vms.api.serializers import IMAGE_SLUG_HELP
from vms.models import VM
from vms.services import NAME_MAX


class SnapshotSerializer(serializers.ModelSerializer):
    vm = serializers.UUIDField(source="source_vm_id", read_only=True, allow_null=True)
    vm_name = serializers.CharField(source="source_vm_name", read_only=True)
    image = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text=IMAGE_SLUG_HELP
    )
    parent = serializers.UUIDField(source="parent_id", read_only=True, allow_null=True)
    kind_label = serializers.CharField(
        read_only=True, help_text='The kind in words, as pages show it ("" for one taken by hand).'
    )
    consistency = serializers.CharField(
        read_only=True, help_text='"with memory", "consistent" or "crash-consistent".'
    )
    origin = serializers.CharField(
        read_only=True,
        help_text='Where it came from: "of <VM>" or "imported from <file> by <user>".',
    )
    imported_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Snapshot
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "kind_label",
            "consistency",
            "origin",
            "state",
            "vm",
            "vm_name",
            "imported_from",
            "imported_by",
            "image",
            "parent",
            "size_bytes",
            "disk_bytes",
            "quiesced",
            "includes_memory",
            "memory_bytes",
            "pinned",
            "created_at",
        ]
        read_only_fields = fields


class SnapshotCreateSerializer(serializers.Serializer):
    name = NameField(max_length=NAME_MAX)
    description = TextField(
        max_length=Snapshot.DESCRIPTION_MAX, required=False, allow_blank=True, default=""
    )
    include_memory = serializers.BooleanField(
        default=False,
        help_text="Keep the running guest's memory too (a live snapshot): restoring it onto "
        "this VM resumes its programs where they were, without a reboot. Its memory file "
        "counts in the snapshot's size. Refused (409) for a VM that is not running.",
    )


class SnapshotUpdateSerializer(serializers.Serializer):
    name = NameField(max_length=NAME_MAX, required=False)
    description = TextField(max_length=Snapshot.DESCRIPTION_MAX, required=False, allow_blank=True)
    pinned = serializers.BooleanField(
        required=False, help_text="Pinned snapshots are never deleted by a snapshot policy."
    )


class SnapshotRestoreSerializer(serializers.Serializer):
    vm = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Restore onto this VM of yours instead. Only the snapshot's disk is put back "
        "then, and that VM boots from it: a snapshot's memory resumes only the VM it was taken "
        "of (the operation's result says `memory: false`).",
    )


class SnapshotNewVMSerializer(serializers.Serializer):
    name = NameField(max_length=NAME_MAX)
    full_copy = serializers.BooleanField(
        default=False, help_text="An independent copy of the whole disk instead of a new layer."
    )
    vcpus = serializers.IntegerField(required=False, min_value=1, max_value=VM.MAX_VCPUS)
    memory_mib = serializers.IntegerField(
        required=False, min_value=VM.MIN_MEMORY_MIB, max_value=VM.MAX_MEMORY_MIB
    )


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = ["slug", "name", "max_snapshots", "max_snapshot_bytes", "max_vms", "is_default"]
        read_only_fields = fields


class UsageSerializer(serializers.Serializer):
    snapshots = serializers.IntegerField()
    snapshot_bytes = serializers.IntegerField()
    vms = serializers.IntegerField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    plan = PlanSerializer()
    usage = UsageSerializer()


class SnapshotTreeNodeSerializer(SnapshotSerializer):
    children = serializers.ListField(
        source="tree_children",
        child=serializers.UUIDField(),
        read_only=True,
        help_text="The snapshots taken on this one (after a restore of it, or in a VM started "
        "from it), oldest first.",
    )

    class Meta(SnapshotSerializer.Meta):
        fields = [*SnapshotSerializer.Meta.fields, "children"]
        read_only_fields = fields


class SnapshotTreeSerializer(serializers.Serializer):
    current_snapshot = serializers.UUIDField(
        allow_null=True,
        help_text='The snapshot the VM\'s disk builds on now (pages say "You are here" after '
        "it), or null.",
    )
    roots = serializers.ListField(
        child=serializers.UUIDField(), help_text="The snapshots no other drawn one is under."
    )
    snapshots = SnapshotTreeNodeSerializer(
        many=True, help_text="The VM's snapshots, each before its children."
    )
