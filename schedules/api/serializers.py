from rest_framework import serializers

from core.api.common import StrictCharField
from schedules.cadence import SCHEDULE_HELP
from schedules.models import SnapshotPolicy
from schedules.services import KEEP_FIELDS


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = SnapshotPolicy
        fields = [
            "enabled",
            "schedule",
            "cron",
            "timezone",
            *KEEP_FIELDS,
            "next_run_at",
            "last_run_at",
        ]
        read_only_fields = fields


def _keep() -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=0, max_value=SnapshotPolicy.KEEP_MAX, required=False, default=0
    )


class PolicyWriteSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False, default=True)
    schedule = StrictCharField(max_length=100, help_text=SCHEDULE_HELP)
    timezone = StrictCharField(max_length=64, required=False, default="UTC")
    keep_last = _keep()
    keep_hourly = _keep()
    keep_daily = _keep()
    keep_weekly = _keep()
    keep_monthly = _keep()
    keep_yearly = _keep()
