from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from operations.models import Operation, lock_of

# The API names what an operation holds and is about the way its clients know them: `vm` is the
# VM its lock names ("vm:<id>"), `snapshot` its subject when that is a snapshot. The keys are the
# domain's; this module imports none of it.
VM_LOCK = "vm:"
SNAPSHOT_MODEL = ("snapshots", "snapshot")


def locked_vm_id(operation: Operation) -> str | None:
    lock = lock_of(operation.lock)  # housekeeping names the VM it works on, too
    return lock.removeprefix(VM_LOCK) if lock.startswith(VM_LOCK) else None


def subject_snapshot_id(operation: Operation) -> str | None:
    subject_type = operation.subject_type
    if subject_type is None or not operation.subject_id:
        return None
    if (subject_type.app_label, subject_type.model) != SNAPSHOT_MODEL:
        return None
    # A string even on an operation just made, whose subject_id is still the snapshot's UUID.
    return str(operation.subject_id)


class OperationSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    vm = serializers.SerializerMethodField()
    snapshot = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Operation
        fields = [
            "id",
            "kind",
            "kind_display",
            "state",
            "progress",
            "message",
            "error",
            "target_name",
            "vm",
            "snapshot",
            "result",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "format": "uuid", "readOnly": True, "nullable": True})
    def get_vm(self, operation) -> str | None:
        return locked_vm_id(operation)

    @extend_schema_field({"type": "string", "format": "uuid", "readOnly": True, "nullable": True})
    def get_snapshot(self, operation) -> str | None:
        return subject_snapshot_id(operation)

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "self": {"type": "string"},
                "vm": {"type": "string", "nullable": True},
                "snapshot": {"type": "string", "nullable": True},
            },
            "required": ["self"],
        }
    )
    def get_links(self, operation) -> dict:
        """Where to follow up: the operation itself, and what it made or acted on."""
        links = {"self": reverse("api:operation-detail", args=[operation.pk])}
        vm_id = operation.result.get("vm") or locked_vm_id(operation)
        snapshot_id = operation.result.get("snapshot") or subject_snapshot_id(operation)
        links["vm"] = reverse("api:vm-detail", args=[vm_id]) if vm_id else None
        links["snapshot"] = (
            reverse("api:snapshot-detail", args=[snapshot_id]) if snapshot_id else None
        )
        return links
