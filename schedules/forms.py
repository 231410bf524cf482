from django import forms

from schedules.cadence import SCHEDULE_HELP
from schedules.models import SnapshotPolicy


def _keep(label: str, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, min_value=0, max_value=SnapshotPolicy.KEEP_MAX, initial=0, help_text=help_text
    )


class PolicyForm(forms.Form):
    enabled = forms.BooleanField(required=False, initial=True, label="Take snapshots on schedule")
    schedule = forms.CharField(max_length=100, initial="daily at 03:00", help_text=SCHEDULE_HELP)
    timezone = forms.CharField(max_length=64, initial="UTC", label="Time zone")
    keep_last = _keep("Keep last", "The newest ones, whatever their time.")
    keep_hourly = _keep("Keep hourly", "The newest of each of the last N hours.")
    keep_daily = _keep("Keep daily", "The newest of each of the last N days.")
    keep_weekly = _keep("Keep weekly", "The newest of each of the last N weeks (Monday to Sunday).")
    keep_monthly = _keep("Keep monthly", "The newest of each of the last N months.")
    keep_yearly = _keep("Keep yearly", "The newest of each of the last N years.")
