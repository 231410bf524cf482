from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.access import get_owned_or_404
from core.errors import Busy, LimitExceeded, ServiceError, Unavailable
from core.page_actions import attempt, progress_message
from snapshots.models import Snapshot
from transfers import quarantine, services
from transfers.forms import ImportForm
from transfers.models import Export, ExportState
from transfers.selectors import exports_of


@login_required
@require_GET
def snapshot_exports(request, pk):
    """A snapshot's exports: their state, the download while it lasts, and Export."""
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    exports = list(exports_of(request.user, snapshot).select_related("operation"))
    context = {
        "snapshot": snapshot,
        "exports": exports,
        "making": any(e.state == ExportState.CREATING for e in exports),
        "export_hours": settings.EXPORT_HOURS,
    }
    if request.headers.get("HX-Request"):
        return render(request, "transfers/_exports.html", context)
    return render(request, "transfers/exports.html", context)


@login_required
@require_POST
def snapshot_export(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    started = attempt(request, lambda: services.export_start(snapshot=snapshot, user=request.user))
    if started is not None:
        _export, operation = started
        text = f"Exporting {snapshot.name!r}; the download appears here when it is ready."
        progress_message(request, operation, text)
    return redirect("snapshot_exports", snapshot.pk)


def _export(request, pk) -> Export:
    return get_owned_or_404(Export.objects.owned_by(request.user), pk)


def export_file_response(export: Export) -> FileResponse:
    """The export's file, streamed, as an attachment (404 once it has expired)."""
    if not export.downloadable:
        raise Http404("This export has expired or is not ready; export the snapshot again.")
    try:
        handle = export.path.open("rb")
    except FileNotFoundError:
        raise Http404("This export's file is gone; export the snapshot again.") from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=export.download_name,
        # Generic bytes: what generated clients know to save as a file (the name says qcow2).
        content_type="application/octet-stream",
    )
    response["Content-Length"] = str(export.path.stat().st_size)
    return response


@login_required
@require_GET
def export_download(request, pk):
    return export_file_response(_export(request, pk))


@login_required
@require_POST
def export_delete(request, pk):
    export = _export(request, pk)
    attempt(
        request,
        lambda: services.export_delete(export=export),
        success=f"The export of {export.snapshot_name!r} was deleted.",
    )
    if export.snapshot_id:
        return redirect("snapshot_exports", export.snapshot_id)
    return redirect("snapshot_list")


def _refusal_status(exc: Exception) -> int:
    """The status of a page that refuses an import: as the API's for the same refusal."""
    if isinstance(exc, Busy):
        return 409
    if isinstance(exc, LimitExceeded):
        return 403
    if isinstance(exc, Unavailable):
        return 503
    return 400


def _import_refused(request, exc: ServiceError | ValidationError):
    """The import page again, saying why the upload was refused (nothing of it was kept)."""
    said = exc.message if isinstance(exc, ServiceError) else " ".join(exc.messages)
    messages.error(request, said)
    return render(
        request, "transfers/import.html", {"form": ImportForm()}, status=_refusal_status(exc)
    )


@csrf_exempt  # the CSRF check runs below, once the upload goes into quarantine
@login_required
@require_http_methods(["GET", "POST"])
def snapshot_import(request):
    """Upload a disk image as a new snapshot. The file streams into quarantine, not memory; a
    worker checks and rewrites it. What can be refused before the body is read, is."""
    if request.method != "POST":
        return _snapshot_import(request, None)
    handler = quarantine.install(request)
    try:
        handler.plan_limit = services.snapshot_import_admit(owner=request.user)
    except ServiceError as exc:
        return _import_refused(request, exc)
    return _snapshot_import(request, handler)


@csrf_protect
def _snapshot_import(request, handler):
    if handler is None:
        return render(request, "transfers/import.html", {"form": ImportForm()})
    try:
        form = ImportForm(request.POST, request.FILES)  # reads the body: the upload streams
        try:
            services.upload_check(handler)
        except (ServiceError, ValidationError) as exc:
            return _import_refused(request, exc)
        if not form.is_valid():
            return render(request, "transfers/import.html", {"form": form}, status=400)
        data = form.cleaned_data
        try:
            operation = services.snapshot_import(
                owner=request.user,
                requester=request.user,
                upload=Path(data["file"].temporary_file_path()),
                fmt=data["format"],
                name=data["name"],
                file_name=data["file"].name,
                image=data["image"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return render(request, "transfers/import.html", {"form": form}, status=400)
        except ServiceError as exc:
            form.add_error(None, exc.message)
            return render(
                request, "transfers/import.html", {"form": form}, status=_refusal_status(exc)
            )
    finally:
        handler.discard()  # the request's files; the import keeps its own name for the one
    progress_message(
        request,
        operation,
        f"The image is uploaded; {data['name']!r} is checked and added to your snapshots in the "
        "background, and is refused with the reason if it does not pass.",
    )
    if request.headers.get("X-Upload-Progress"):
        # The page's own upload (with its progress bar) goes on to the list itself.
        return JsonResponse({"location": reverse("snapshot_list")})
    return redirect("snapshot_list")
