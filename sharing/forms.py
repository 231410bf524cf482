from django import forms

from sharing.models import Invitation
from sharing.services import USERNAME_MAX
from vms.models import VM


class ShareForm(forms.Form):
    username = forms.CharField(
        max_length=USERNAME_MAX, help_text="They can start VMs from it, nothing else."
    )


class InvitationForm(forms.Form):
    max_uses = forms.IntegerField(
        label="Up to this many people",
        required=False,
        min_value=1,
        max_value=Invitation.MAX_USES_MAX,
        help_text="Empty: anyone with the code.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=365,
        help_text="Empty: until you revoke it.",
    )


class JoinForm(forms.Form):
    code = forms.CharField(max_length=Invitation.CODE_MAX, label="Invitation code")


class SharedNewVMForm(forms.Form):
    name = forms.CharField(max_length=64, label="New VM name")
    vcpus = forms.IntegerField(
        label="vCPUs",
        min_value=1,
        max_value=VM.MAX_VCPUS,
        required=False,
        help_text="Empty: as the snapshot's VM had.",
    )
    memory_mib = forms.IntegerField(
        label="Memory (MiB)",
        min_value=VM.MIN_MEMORY_MIB,
        max_value=VM.MAX_MEMORY_MIB,
        required=False,
        help_text="Empty: as the snapshot's VM had.",
    )
    full_copy = forms.BooleanField(
        required=False,
        label="Independent full copy",
        help_text="Copy the whole disk instead of building on the snapshot's layers.",
    )
