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
