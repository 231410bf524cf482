from django import forms

from snapshots.models import Snapshot
from transfers.disk_images import FORMATS
from vms.models import Image


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Disk image", help_text="A qcow2 or raw disk image with an ext4 root file system."
    )
    format = forms.ChoiceField(
        choices=[(f, f) for f in FORMATS],
        initial="qcow2",
        help_text="What the file is. It is checked: a file of another format is refused.",
    )
    name = forms.CharField(max_length=Snapshot.NAME_MAX, label="Snapshot name")
    image = forms.ModelChoiceField(
        queryset=Image.objects.filter(is_public=True),
        required=False,
        empty_label=None,
        help_text="The image whose kernel the disk boots with.",
    )
