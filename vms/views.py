import zlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.http.request import split_domain_port
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.access import get_owned_or_404
from core.errors import ServiceError
from core.page_actions import attempt, attempt_on_form, progress_message
from core.views import not_found
from operations.models import Operation, housekeeping_lock
from snapshots import page_links
from snapshots import services as snapshot_services
from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from snapshots.selectors import usage_for
from vms import page_parts, publishing, services
from vms.forms import ConsoleLineForm, VMCreateForm
from vms.models import VM, Image, VMOperationKind, VMState, vm_id_of_lock

PAGE_SIZE = 50


def _active_operations(vms: list) -> None:
    """Set `vm.active_operations` on each VM: the operations that hold it now, oldest first."""
    by_lock: dict[str, list] = {vm.lock: [] for vm in vms}
    active = Operation.objects.active().filter(lock__in=list(by_lock)).order_by("created_at")
    for operation in active:
        by_lock[operation.lock].append(operation)
    for vm in vms:
        vm.active_operations = by_lock[vm.lock]


@login_required
@require_GET
def dashboard(request):
    vms = VM.objects.owned_by(request.user).select_related("image", "host").order_by("name", "id")
    page = Paginator(vms, PAGE_SIZE).get_page(request.GET.get("page"))
    on_page = list(page.object_list)
    _active_operations(on_page)
    busy = any(vm.active_operations or vm.state == VMState.CREATING for vm in on_page)
    context = {
        "vms": on_page,
        "page": page,
        "busy": busy,
        **_snapshots_on_dashboard(request, on_page),
        **page_parts.dashboard_context(request, on_page),
    }
    if request.headers.get("HX-Request"):
        return render(request, "vms/_vm_table.html", context)
    return render(request, "vms/dashboard.html", context)


def _vm_context(request, vm):
    operation = Operation.objects.active().holding(vm.lock).first()
    recent = Operation.objects.holding(vm.lock).exclude(pk=getattr(operation, "pk", None))
    # The service's own work on the VM: shown as a quiet line, never as busy.
    housekeeping = Operation.objects.active().holding(housekeeping_lock(vm.lock)).first()
    live_card, live_progress = _live_keys(vm, operation, housekeeping)
    return {
        "vm": vm,
        "live_card": live_card,
        "live_progress": live_progress,
        "can": {
            "start": services.vm_can(vm, VMOperationKind.START),
            "stop": services.vm_can(vm, VMOperationKind.STOP),
            "repair": services.vm_can(vm, VMOperationKind.REPAIR),
            "delete": services.vm_can(vm, VMOperationKind.DELETE),
            "retry": services.vm_can(vm, VMOperationKind.CREATE),
        },
        # Why a repair cannot work, when that is known: it is then not the button offered.
        "repair_hopeless": services.repair_hopeless(vm) if vm.state == VMState.ERROR else "",
        "operation": operation,
        "housekeeping": housekeeping,
        "ssh_command": publishing.ssh_command(vm, split_domain_port(request.get_host())[0]),
        **_guest(vm),
        # The page watches the VM while something happens to it.
        "polling": bool(operation or housekeeping) or vm.state == VMState.CREATING,
        "last_operation": recent.order_by("-created_at").first(),
        **_snapshots_on_vm_page(request, vm),
        **page_parts.vm_page_context(request, vm),
    }


def _guest(vm) -> dict:
    """What the guest's agent says, for the VM card."""
    guest = services.guest_info(vm)
    return {"guest": guest, "guest_uptime": uptime_text(guest.uptime_seconds) if guest else ""}


def uptime_text(seconds: float | None) -> str:
    """ "up 42 min", "up 3 h 5 min", "up 2 days"; "" when not known."""
    if seconds is None:
        return ""
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"up {max(minutes, 1)} min"
    if minutes < 48 * 60:
        return f"up {minutes // 60} h {minutes % 60} min"
    return f"up {minutes // (24 * 60)} days"


def _snapshots_on_dashboard(request, vms) -> dict:
    """The plan's usage line, and each VM's count of ready snapshots the plan counts (an undo
    point is not one) as `vm.snapshot_count`."""
    counts = dict(
        Snapshot.objects.filter(source_vm__in=vms, state=SnapshotState.READY)
        .exclude(kind=SnapshotKind.BEFORE_RESTORE)
        .values_list("source_vm")
        .annotate(n=Count("id"))
        .order_by()
    )
    for vm in vms:
        vm.snapshot_count = counts.get(vm.pk, 0)
    return {"usage": usage_for(request.user)}


def _snapshots_on_vm_page(request, vm) -> dict:
    """The VM's snapshots, whether one can be taken or restored now, and the plan's usage."""
    snapshots = (
        Snapshot.objects.owned_by(request.user)
        .filter(source_vm=vm)
        .select_related("parent", "source_vm")
        .order_by("-created_at")
    )
    undo_points = sum(1 for s in snapshots if s.kind == SnapshotKind.BEFORE_RESTORE)
    return {
        "snapshots": snapshots,
        # As the plan counts them: an undo point is kept besides, and said apart.
        "snapshot_count": len(snapshots) - undo_points,
        "undo_points": undo_points,
        # What services.snapshot_take and snapshot_restore ask of the VM.
        "can_snapshot": vm.state in (VMState.RUNNING, VMState.STOPPED),
        "usage": usage_for(request.user),
        **page_links.context(),
    }


@login_required
@require_http_methods(["GET", "POST"])
def vm_new(request):
    """A new VM from an image or from one of the user's snapshots."""
    images = Image.objects.filter(is_public=True).select_related("layer")
    snapshots = (
        Snapshot.objects.owned_by(request.user)
        .filter(state=SnapshotState.READY)
        .select_related("imported_by")
    )
    initial = {}
    if request.GET.get("snapshot"):
        initial["source"] = f"snapshot:{request.GET['snapshot']}"
    form = VMCreateForm(request.POST or None, images=images, snapshots=snapshots, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        kind, _, ref = data["source"].partition(":")

        def create():
            if kind == "snapshot":
                return snapshot_services.snapshot_new_vm(
                    snapshot=get_owned_or_404(Snapshot.objects.owned_by(request.user), ref),
                    user=request.user,
                    name=data["name"],
                    full_copy=data["full_copy"],
                    vcpus=data["vcpus"],
                    memory_mib=data["memory_mib"],
                )
            return services.vm_create(
                owner=request.user,
                name=data["name"],
                image=services.image_for_new_vm(ref),
                vcpus=data["vcpus"],
                memory_mib=data["memory_mib"],
                disk_gib=data["disk_gib"],
            )

        created, operation = attempt_on_form(form, create)
        if created:
            progress_message(request, operation, f"Creating VM {data['name']!r}…")
            return redirect("vm_detail", vm_id_of_lock(operation.lock))
    return render(request, "vms/vm_new.html", {"form": form, "images": images})


@login_required
@require_GET
def vm_detail(request, pk):
    vm = get_owned_or_404(
        VM.objects.owned_by(request.user).select_related("image", "current_snapshot", "host"), pk
    )
    context = _vm_context(request, vm)
    context["vm_actions"] = [action for action in ACTIONS if action != "delete"]
    context["console"], context["console_error"] = _console(vm)
    context["console_line_max"] = services.CONSOLE_LINE_MAX
    return render(request, "vms/vm_detail.html", context)


def _live_keys(vm, operation, housekeeping) -> tuple[str, str]:
    """What a poll of the VM page compares: what the card shows (the VM's state and which
    operations run on it), and the running operation's progress and message."""
    card = f"{vm.state}:{getattr(operation, 'pk', '')}:{getattr(housekeeping, 'pk', '')}"
    progress = ""
    if operation is not None:
        digest = zlib.crc32(operation.message.encode())
        progress = f"{operation.state}:{operation.progress}:{digest:x}"
    return card, progress


@login_required
@require_GET
def vm_live(request, pk):
    """What changes on the VM page while an operation runs (polled only then).

    Each poll names what the page shows (`card`, `progress`). While the same operation runs, a
    poll answers 204 when nothing changed, and only the progress line when that changed; the
    rest (the state card, and out of band the snapshot table, the usage line and the Take
    Snapshot button) is sent when the card changes (an operation starts or ends, the state
    moves). Once the operation has ended, `vm-changed` tells the page to refresh what else may
    have changed."""
    queryset = VM.objects.owned_by(request.user).select_related("image", "current_snapshot", "host")
    try:
        vm = get_owned_or_404(queryset, pk)
    except Http404:
        # Deleted while the page watched: the page goes back to the dashboard.
        response = not_found(request)
        response["HX-Redirect"] = "/"
        return response
    operation = Operation.objects.active().holding(vm.lock).first()
    housekeeping = Operation.objects.active().holding(housekeeping_lock(vm.lock)).first()
    card, progress = _live_keys(vm, operation, housekeeping)
    if (operation or housekeeping) and request.GET.get("card") == card:
        if request.GET.get("progress") == progress:
            return HttpResponse(status=204)  # htmx swaps nothing
        response = render(
            request, "vms/_vm_progress.html", {"operation": operation, "progress_key": progress}
        )
        response["HX-Reswap"] = "none"  # the card stays; the progress line is swapped by id
        return response
    context = _vm_context(request, vm)
    response = render(request, "vms/_vm_live.html", context)
    if not context["polling"]:
        response["HX-Trigger"] = "vm-changed"
    return response


ACTIONS = {
    "start": (lambda vm, user: services.vm_start(vm=vm, user=user), "Starting {name}…"),
    "stop": (lambda vm, user: services.vm_stop(vm=vm, user=user), "Stopping {name}…"),
    "force-stop": (
        lambda vm, user: services.vm_stop(vm=vm, user=user, force=True),
        "Forcing {name} off…",
    ),
    "reboot": (lambda vm, user: services.vm_reboot(vm=vm, user=user), "Rebooting {name}…"),
    "delete": (lambda vm, user: services.vm_delete(vm=vm, user=user), "Deleting {name}…"),
    "repair": (lambda vm, user: services.vm_repair(vm=vm, user=user), "Repairing {name}…"),
    "retry": (
        lambda vm, user: services.vm_create_retry(vm=vm, user=user),
        "Creating VM {name!r} again…",
    ),
}


@login_required
@require_POST
def vm_action(request, pk, action):
    vm = get_owned_or_404(VM.objects.owned_by(request.user), pk)
    if action not in ACTIONS:
        messages.error(request, "That is not something a VM can do.")
        return redirect("vm_detail", vm.pk)
    call, under_way = ACTIONS[action]
    operation = attempt(request, lambda: call(vm, request.user))
    if operation is None:
        return redirect("vm_detail", vm.pk)
    progress_message(request, operation, under_way.format(name=vm.name))
    if action == "delete":
        return redirect("dashboard")
    return redirect("vm_detail", vm.pk)


@login_required
@require_http_methods(["GET", "POST"])
def vm_console(request, pk):
    """GET: the console's recent output. POST: type a line into it."""
    vm = get_owned_or_404(VM.objects.owned_by(request.user), pk)
    error = ""
    if request.method == "POST":
        form = ConsoleLineForm(request.POST)
        if form.is_valid():
            try:
                services.console_send(vm=vm, user=request.user, line=form.cleaned_data["line"])
            except ServiceError as exc:
                error = exc.message
            except ValidationError as exc:
                error = " ".join(exc.messages)
        else:
            error = f"Keep a line to {services.CONSOLE_LINE_MAX} characters."
    console, unavailable = _console(vm)
    context = {"vm": vm, "console": console, "console_error": error or unavailable}
    return render(request, "vms/_console.html", context)


def _console(vm) -> tuple[str, str]:
    """The console's recent output, and why it cannot be read (its host does not answer)."""
    try:
        return services.console_read(vm=vm), ""
    except ServiceError as exc:
        return "", exc.message
