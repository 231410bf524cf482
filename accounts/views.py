from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import SignupForm, SshKeyForm
from accounts.models import ApiToken, SshKey
from accounts.selectors import ssh_keys_of
from accounts.services import ssh_key_add, ssh_key_delete, token_create, token_revoke
from accounts.signup import (
    CLOSED,
    INVITATION,
    invitation_code_in,
    signup_allowed,
    signup_create,
    signup_mode,
)
from core.access import get_owned_or_404
from core.page_actions import attempt_on_form, back


class LoginView(auth_views.LoginView):
    """Django's login, whose page offers sign-up only while it is possible."""

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "signup_mode": signup_mode()}


@require_http_methods(["GET", "POST"])
def signup(request):
    """Create an account, as SIGNUP allows: open, with an invitation code, or not at all; at
    most SIGNUP_RATE attempts per client address."""
    if request.user.is_authenticated:
        return back(request, "dashboard")
    mode = signup_mode()
    next_page = _next(request)
    if mode == CLOSED:
        status = 403 if request.method == "POST" else 200
        return render(request, "accounts/signup_closed.html", {"next": next_page}, status=status)
    code = request.GET.get("code") or invitation_code_in(next_page)
    form = SignupForm(
        request.POST or None, invitation=mode == INVITATION, initial={"invitation_code": code}
    )
    context = {"form": form, "signup_mode": mode, "next": next_page}
    if request.method == "POST":
        wait = signup_allowed(request)
        if wait is not None:
            minutes = -(-wait // 60)
            context["error"] = (
                f"Too many sign-ups from your address; try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}."
            )
            return render(request, "accounts/signup.html", context, status=429)
        if form.is_valid():
            data = form.cleaned_data
            created, user = attempt_on_form(
                form,
                lambda: signup_create(
                    username=data["username"],
                    email=data.get("email", ""),
                    password=data["password1"],
                    invitation_code=data.get("invitation_code", ""),
                ),
            )
            if created:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome, {user.username}! Your account is ready.")
                return back(request, "dashboard")
    return render(request, "accounts/signup.html", context)


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    """The user's API tokens: create one (shown once), see when each was used, revoke."""
    new_key = None
    if request.method == "POST":
        try:
            _token, new_key = token_create(user=request.user, name=request.POST.get("name", ""))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Token created. Copy it now: it is not shown again.")
    return render(
        request,
        "accounts/tokens.html",
        {"tokens": ApiToken.objects.filter(user=request.user), "new_key": new_key},
    )


@login_required
@require_POST
def token_delete(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token_revoke(token=token)
    messages.success(request, f"Token {token.name!r} revoked.")
    return redirect("tokens")


@login_required
@require_http_methods(["GET", "POST"])
def ssh_keys(request):
    """The user's SSH keys: see each one's fingerprint, add one, delete one."""
    form = SshKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        added, key = attempt_on_form(
            form,
            lambda: ssh_key_add(
                owner=request.user,
                title=form.cleaned_data["title"],
                public_key=form.cleaned_data["public_key"],
            ),
        )
        if added:
            messages.success(request, f"SSH key {key.title!r} added ({key.fingerprint}).")
            return redirect("ssh_keys")
    return render(
        request, "accounts/ssh_keys.html", {"keys": ssh_keys_of(request.user), "form": form}
    )


@login_required
@require_POST
def ssh_key_remove(request, pk):
    key = get_owned_or_404(SshKey.objects.owned_by(request.user), pk)
    ssh_key_delete(key=key)
    messages.success(request, f"SSH key {key.title!r} deleted.")
    return redirect("ssh_keys")
