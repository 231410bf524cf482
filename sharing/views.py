from datetime import timedelta
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.access import get_owned_or_404
from core.errors import ServiceError
from core.page_actions import attempt, attempt_on_form, progress_message
from sharing import selectors, services
from sharing.forms import InvitationForm, JoinForm, SharedNewVMForm, ShareForm
from sharing.models import Invitation, Share
from snapshots.models import Snapshot
from vms.models import vm_id_of_lock


def _share_page(request, snapshot, *, share_form=None, invitation_form=None):
    context = {
        "snapshot": snapshot,
        "shares": selectors.shares_of(snapshot),
        "invitations": selectors.invitations_of(snapshot),
        "share_form": share_form or ShareForm(),
        "invitation_form": invitation_form or InvitationForm(),
        "now": timezone.now(),
    }
    return render(request, "sharing/share.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def snapshot_share(request, pk):
    """The owner's page of a snapshot's shares and invitations; POST shares it by username."""
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    if request.method == "GET":
        return _share_page(request, snapshot)
    form = ShareForm(request.POST)
    if form.is_valid():
        try:
            share = services.share_create(snapshot=snapshot, username=form.cleaned_data["username"])
        except ValidationError as exc:
            form.add_error("username", exc.message_dict.get("username", exc.messages))
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request, f"{share.recipient.username} can now start VMs from {snapshot.name!r}."
            )
            return redirect("snapshot_share", snapshot.pk)
    return _share_page(request, snapshot, share_form=form)


@login_required
@require_POST
def invitation_create(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    form = InvitationForm(request.POST)
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        created, _ = attempt_on_form(
            form,
            lambda: services.invitation_create(
                snapshot=snapshot,
                max_uses=form.cleaned_data["max_uses"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            ),
        )
        if created:
            messages.success(request, "Invitation created: give its link or code to your class.")
            return redirect("snapshot_share", snapshot.pk)
    return _share_page(request, snapshot, invitation_form=form)


@login_required
@require_POST
def share_revoke(request, pk):
    share = get_owned_or_404(
        Share.objects.owned_by(request.user).active().select_related("recipient", "snapshot"), pk
    )
    services.share_revoke(share=share)
    messages.success(
        request,
        f"{share.recipient.username} can no longer start VMs from {share.snapshot.name!r}; "
        "the VMs they started keep running.",
    )
    return redirect("snapshot_share", share.snapshot_id)


@login_required
@require_POST
def invitation_revoke(request, pk):
    invitation = get_owned_or_404(Invitation.objects.owned_by(request.user).active(), pk)
    ended = services.invitation_revoke(invitation=invitation)
    messages.success(
        request,
        f"Invitation revoked; {ended} share{'s' if ended != 1 else ''} made with it ended "
        "(VMs already started keep running).",
    )
    return redirect("snapshot_share", invitation.snapshot_id)


@login_required
@require_GET
def shared_list(request):
    """Snapshots other users share with this user, and a field to join with a code."""
    context = {"snapshots": selectors.shared_with(request.user), "join_form": JoinForm()}
    return render(request, "sharing/shared_list.html", context)


def _redeem(request, code: str):
    share = attempt(request, lambda: services.invitation_redeem(code=code, user=request.user))
    if share is None:
        return None
    messages.success(
        request,
        f"{share.snapshot.owner.username} shares {share.snapshot.name!r} with you: "
        "start a VM from it below.",
    )
    return redirect("shared_list")


@login_required
@require_POST
def join_with_code(request):
    """Redeem a code typed on the "Shared with me" page."""
    form = JoinForm(request.POST)
    if form.is_valid():
        done = _redeem(request, form.cleaned_data["code"])
        if done is not None:
            return done
    else:
        messages.error(request, "Type the invitation code you were given.")
    return redirect("shared_list")


def invitation_code_of_link(url: str) -> str:
    """The code in an invitation link (the address `join` answers), else ""."""
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return ""
    return match.kwargs.get("code", "") if match.view_name == "share_join" else ""


@login_required
@require_http_methods(["GET", "POST"])
def join(request, code):
    """An invitation link: GET shows what it shares, POST (the button) redeems it."""
    try:
        invitation = services.invitation_find(code)
    except ServiceError as exc:
        return render(request, "sharing/join.html", {"error": exc.message}, status=404)
    if request.method == "POST":
        done = _redeem(request, code)
        if done is not None:
            return done
    context = {"invitation": invitation, "snapshot": invitation.snapshot}
    return render(request, "sharing/join.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def shared_new_vm(request, pk):
    """Start a VM of one's own from a snapshot shared with one."""
    snapshot = get_owned_or_404(selectors.shared_with(request.user), pk)
    form = SharedNewVMForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        started, operation = attempt_on_form(
            form,
            lambda: services.shared_new_vm(
                snapshot=snapshot,
                user=request.user,
                name=data["name"],
                full_copy=data["full_copy"],
                vcpus=data["vcpus"],
                memory_mib=data["memory_mib"],
            ),
        )
        if started:
            text = f"Creating VM {data['name']!r} from {snapshot.name!r}…"
            progress_message(request, operation, text)
            return redirect("vm_detail", vm_id_of_lock(operation.lock))
    return render(request, "sharing/new_vm.html", {"snapshot": snapshot, "form": form})
