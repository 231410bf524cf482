from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import SshKey, User


class SignupForm(UserCreationForm):
    """A new account's name, address and password; with an invitation code when sign-up asks
    for one (SIGNUP=invitation)."""

    invitation_code = forms.CharField(
        max_length=64,
        required=False,
        help_text="The code of an invitation to a shared snapshot, as you were given it.",
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args, invitation: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if invitation:
            self.fields["invitation_code"].required = True
        else:
            del self.fields["invitation_code"]


class SshKeyForm(forms.Form):
    """A public key to add; the service checks the key and the title (both may come empty)."""

    title = forms.CharField(
        max_length=SshKey.TITLE_MAX,
        required=False,
        help_text="Empty: the key's comment, such as you@laptop.",
    )
    public_key = forms.CharField(
        label="Key",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="The contents of your .pub file, which begins with ssh-ed25519, ssh-rsa, "
        "ecdsa-sha2-… or sk-… (a security key).",
    )
