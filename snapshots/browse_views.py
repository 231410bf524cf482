"""Pages that look inside a snapshot: its files and folders, one file, and a comparison of two
snapshots. A refusal (a bad path, a disk that cannot be browsed) is a sentence on the page. A
folder and a comparison are shown a page at a time, with a "More" link to the next."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.access import get_owned_or_404
from snapshots import browse
from snapshots.api.browse import file_response
from snapshots.models import Snapshot


def _status(exc: browse.BrowseError) -> int:
    if isinstance(exc, browse.PathNotFound):
        return 404
    if isinstance(exc, browse.BadPath | browse.WrongType | browse.BadCursor):
        return 400
    if isinstance(exc, browse.Damaged | browse.TooLarge):
        return 422
    return 200  # the disk cannot be browsed: the page says why


def _breadcrumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [(part, browse.join_path(parts[: i + 1])) for i, part in enumerate(parts)]


@login_required
@require_GET
def snapshot_files(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    path = request.GET.get("path", "/")
    context = {"snapshot": snapshot, "path": path, "breadcrumbs": []}
    status = 200
    try:
        with browse.snapshot_open(snapshot) as disk:
            context["disk"] = {"type": disk.fs_type, "needs_recovery": disk.needs_recovery}
            entry = disk.stat(path)
            context.update(entry=entry, path=entry.path, breadcrumbs=_breadcrumbs(entry.path))
            if entry.is_dir:
                listing = disk.listdir(entry.path, request.GET.get("cursor"))
                context.update(entries=listing.entries, next=listing.next)
            elif entry.is_file:
                context["text"] = disk.read_text(entry.path)
                context["too_big"] = entry.size > browse.TEXT_PREVIEW_BYTES
    except browse.BrowseError as exc:
        context["error"] = exc.message
        status = _status(exc)
    return render(request, "snapshots/browse/files.html", context, status=status)


@login_required
@require_GET
def snapshot_file_download(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    path = request.GET.get("path", "")
    try:
        disk = browse.snapshot_open(snapshot)
    except browse.BrowseError as exc:
        return _refused(request, snapshot, path, exc)
    try:
        entry, stream = disk.open_file(path)
    except browse.BrowseError as exc:
        disk.close()
        return _refused(request, snapshot, path, exc)
    return file_response(disk, entry, stream)


def _refused(request, snapshot, path, exc):
    context = {"snapshot": snapshot, "path": path, "breadcrumbs": [], "error": exc.message}
    return render(request, "snapshots/browse/files.html", context, status=_status(exc))


@login_required
@require_GET
def snapshot_compare(request, pk):
    snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)
    others = (
        Snapshot.objects.owned_by(request.user)
        .filter(state="ready")
        .exclude(pk=snapshot.pk)
        .order_by("-created_at")[:200]
    )
    context = {"snapshot": snapshot, "others": others, "other": None}
    status = 200
    raw = request.GET.get("with")
    other_id = raw or snapshot.parent_id
    if other_id is None:
        context["error"] = (
            "This snapshot has none before it: choose another snapshot to compare it with."
        )
    else:
        other = get_owned_or_404(Snapshot.objects.owned_by(request.user), other_id)
        context["other"] = other
        try:
            result = browse.snapshots_compare(
                old=other, new=snapshot, cursor=request.GET.get("cursor")
            )
        except browse.BrowseError as exc:
            context["error"] = exc.message
            status = _status(exc)
        else:
            context.update(result=result, paged=bool(request.GET.get("cursor")))
    return render(request, "snapshots/browse/compare.html", context, status=status)
