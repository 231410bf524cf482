from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from operations.models import Operation


class OperationSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    vm = serializers.UUIDField(source="vm_id", read_only=True, allow_null=True)
    snapshot = serializers.UUIDField(source="snapshot_id", read_only=True, allow_null=True)
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
        vm_id = operation.result.get("vm") or operation.vm_id
        snapshot_id = operation.result.get("snapshot") or operation.snapshot_id
        links["vm"] = reverse("api:vm-detail", args=[vm_id]) if vm_id else None
        links["snapshot"] = (
            reverse("api:snapshot-detail", args=[snapshot_id]) if snapshot_id else None
        )
        return links
