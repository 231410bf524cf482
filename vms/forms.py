from django import forms
from django.template.defaultfilters import filesizeformat

from vms.models import VM
from vms.services import CONSOLE_LINE_MAX


class VMCreateForm(forms.Form):
    """A new VM, from an image or from one of the user's snapshots."""

    name = forms.CharField(max_length=64)
    source = forms.ChoiceField(label="Start from")
    vcpus = forms.IntegerField(label="vCPUs", min_value=1, max_value=VM.MAX_VCPUS, initial=1)
    memory_mib = forms.IntegerField(
        label="Memory (MiB)", min_value=VM.MIN_MEMORY_MIB, max_value=VM.MAX_MEMORY_MIB, initial=256
    )
    disk_gib = forms.IntegerField(
        label="Disk (GiB)",
        min_value=1,
        initial=4,
        help_text="From an image only: a VM from a snapshot gets the snapshot's disk size.",
    )
    full_copy = forms.BooleanField(
        required=False,
        label="Independent full copy",
        help_text="From a snapshot only: copy the whole disk instead of sharing its layers.",
    )

    def __init__(self, *args, images=(), snapshots=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("Images", [(f"image:{i.slug}", image_label(i)) for i in images])]
        if snapshots:
            choices.append(
                (
                    "Your snapshots",
                    [(f"snapshot:{s.id}", f"{s.name} ({s.origin})") for s in snapshots],
                )
            )
        self.fields["source"].choices = choices


def image_label(image) -> str:
    """An image as a choice: its name, the system inside, what it comes with and its size."""
    details = ", ".join(part for part in (image.os_name, image.summary) if part)
    size = filesizeformat(image.size_bytes)
    return f"{image.name} ({details}; {size})" if details else f"{image.name} ({size})"


class ConsoleLineForm(forms.Form):
    line = forms.CharField(max_length=CONSOLE_LINE_MAX, required=False, strip=False)
