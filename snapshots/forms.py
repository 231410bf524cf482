from django import forms

from snapshots.models import Snapshot


class SnapshotRenameForm(forms.Form):
    name = forms.CharField(max_length=Snapshot.NAME_MAX)
    description = forms.CharField(
        max_length=Snapshot.DESCRIPTION_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class SnapshotTakeForm(SnapshotRenameForm):
    include_memory = forms.BooleanField(
        required=False,
        label="Include memory",
        help_text="A running VM only: restoring it resumes the running programs, without a reboot.",
    )


class SnapshotNewVMForm(forms.Form):
    name = forms.CharField(max_length=64, label="New VM name")
    full_copy = forms.BooleanField(required=False, label="Independent full copy")


class ForkForm(forms.Form):
    count = forms.IntegerField(
        min_value=1,
        max_value=10,
        initial=1,
        label="New VMs",
        error_messages={
            "min_value": "Choose between 1 and 10 new VMs.",
            "max_value": "Choose between 1 and 10 new VMs.",
            "invalid": "Choose between 1 and 10 new VMs.",
            "required": "Choose between 1 and 10 new VMs.",
        },
    )
