from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.access import get_owned_or_404
from core.page_actions import attempt, back, progress_message
from snapshots import page_links, services
from snapshots.forms import ForkForm, SnapshotNewVMForm, SnapshotRenameForm, SnapshotTakeForm
from snapshots.models import Snapshot, SnapshotState
from snapshots.selectors import tree_snapshots, usage_for
from snapshots.tree import snapshot_tree, tree_lines
from vms.models import VM, vm_id_of_lock

PAGE_SIZE = 50


def _form_error(request, form) -> None:
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, error)


@login_required
@require_GET
def snapshot_list(request):
    snapshots = Snapshot.objects.owned_by(request.user).select_related(
        "source_vm", "parent", "image", "imported_by"
    )
    page = Paginator(snapshots, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "snapshots": page.object_list,
        "usage": usage_for(request.user),
        **page_links.context(),
    }
    return render(request, "snapshots/snapshot_list.html", context)


@login_required
@require_GET
def snapshot_list_row(request, pk):
    """A row of the Snapshots page, which asks for it every 2 s while its snapshot is being made:
    the row again until then; the ready row (asking no more) once it is, and nothing once it is
    gone (a failed import is deleted), which takes the row off the page; in both cases with the
    plan's usage, which then changed."""
    snapshot = (
        Snapshot.objects.owned_by(request.user)
        .select_related("source_vm", "parent", "image")
        .filter(pk=pk)
        .first()
    )
    made = snapshot is None or snapshot.state != SnapshotState.CREATING
    context = {
        "snapshot": snapshot,
        "usage": usage_for(request.user) if made else None,
        "list_path": reverse("snapshot_list"),
        **page_links.context(),
    }
    return render(request, "snapshots/_list_row.html", context)


@login_required
@require_POST
def snapshot_take(request, vm_pk):
    vm = get_owned_or_404(VM.objects.owned_by(request.user), vm_pk)
    form = SnapshotTakeForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return redirect("vm_detail", vm.pk)
    operation = attempt(
        request,
        lambda: services.snapshot_take(
            vm=vm,
            user=request.user,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            include_memory=form.cleaned_data["include_memory"],
        ),
    )
    if operation is not None:
        text = f"Taking snapshot {form.cleaned_data['name']!r} of {vm.name}…"
        progress_message(request, operation, text)
    return redirect("vm_detail", vm.pk)


@login_required
@require_POST
def vm_fork(request, vm_pk):
    vm = get_owned_or_404(VM.objects.owned_by(request.user).select_related("image"), vm_pk)
    form = ForkForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return redirect("vm_detail", vm.pk)
    count = form.cleaned_data["count"]
    operation = attempt(request, lambda: services.vm_fork(vm=vm, user=request.user, count=count))
    if operation is not None:
        text = f"Forking {vm.name} into {count} new VM{'s' if count != 1 else ''}…"
        progress_message(request, operation, text)
    return redirect("vm_detail", vm.pk)


@login_required
@require_POST
def snapshot_restore(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    operation = attempt(
        request, lambda: services.snapshot_restore(snapshot=snapshot, user=request.user)
    )
    if operation is not None:
        text = f"Restoring {snapshot.name!r}; the current disk is kept as an undo snapshot."
        progress_message(request, operation, text)
        return redirect("vm_detail", vm_id_of_lock(operation.lock))
    return back(request, "snapshot_list")


@login_required
@require_POST
def snapshot_new_vm(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    form = SnapshotNewVMForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return back(request, "snapshot_list")
    operation = attempt(
        request,
        lambda: services.snapshot_new_vm(
            snapshot=snapshot,
            user=request.user,
            name=form.cleaned_data["name"],
            full_copy=form.cleaned_data["full_copy"],
        ),
    )
    if operation is None:
        return back(request, "snapshot_list")
    text = f"Creating VM {form.cleaned_data['name']!r} from {snapshot.name!r}…"
    progress_message(request, operation, text)
    return redirect("vm_detail", vm_id_of_lock(operation.lock))


@login_required
@require_POST
def snapshot_rename(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    form = SnapshotRenameForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
    else:
        attempt(
            request,
            lambda: services.snapshot_rename(
                snapshot=snapshot,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            ),
            success="Snapshot renamed.",
        )
    return back(request, "snapshot_list")


@login_required
@require_POST
def snapshot_delete(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    attempt(
        request,
        lambda: services.snapshot_delete(snapshot=snapshot, user=request.user),
        success=f"Deleted snapshot {snapshot.name!r}.",
    )
    return back(request, "snapshot_list")


@login_required
@require_POST
def snapshot_pin(request, pk):
    """Pin (pinned=1) or unpin (pinned=0) a snapshot."""
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    pinned = request.POST.get("pinned") == "1"
    services.snapshot_pin(snapshot=snapshot, pinned=pinned)
    if pinned:
        messages.success(request, f"Pinned {snapshot.name!r}: no schedule will delete it.")
    else:
        messages.success(request, f"Unpinned {snapshot.name!r}.")
    return back(request, snapshot.get_absolute_url())


@login_required
@require_GET
def vm_snapshot_dialogs(request, pk):
    """The dialogs of the VM page's snapshots, refreshed when an operation has ended."""
    vm = get_owned_or_404(VM.objects.owned_by(request.user), pk)
    snapshots = (
        Snapshot.objects.owned_by(request.user)
        .filter(source_vm=vm, state=SnapshotState.READY)
        .select_related("source_vm")
        .order_by("-created_at")
    )
    return render(request, "snapshots/_vm_dialogs.html", {"vm": vm, "snapshots": snapshots})


@login_required
@require_GET
def vm_snapshot_tree(request, pk):
    """The VM's snapshots as a tree, with where its disk is now."""
    vm = get_owned_or_404(VM.objects.owned_by(request.user), pk)
    snapshots = tree_snapshots(request.user, vm=vm)
    roots = snapshot_tree(snapshots, vm.current_snapshot_id, here=True)
    context = {
        "vm": vm,
        "lines": tree_lines(roots),
        "snapshots": snapshots,
        "here_path": request.path,
    }
    return render(request, "snapshots/vm_tree.html", context)


@login_required
@require_GET
def snapshot_tree_page(request):
    """All the user's snapshots as trees: those of deleted VMs and imported ones root their own."""
    snapshots = tree_snapshots(request.user)
    context = {
        "lines": tree_lines(snapshot_tree(snapshots)),
        "snapshots": snapshots,
        "here_path": request.path,
    }
    return render(request, "snapshots/snapshot_tree.html", context)
