"""API: look inside a snapshot (list a folder, read a file) and compare two snapshots.

Errors keep the API's one shape: a bad path is a 400 with `fields.path`, a missing path a 404, a
disk that cannot be browsed (not ext2/3/4, a partition table, not on this machine) a 409, a file
system that is damaged or larger than one request reads a 422.

A folder and a comparison come a page at a time (`browse.PAGE_ENTRIES` entries or changes); `next`
is the link to the page after, built from an opaque `cursor`.
"""

import json
import uuid

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, renderer_classes
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from core.access import get_owned_or_404
from core.api.common import query_uuid
from core.api.errors import error_body
from core.api.schema import ERRORS_READ, ID_PARAMETER, error
from snapshots import browse
from snapshots.models import Snapshot

PATH = OpenApiParameter(
    "path",
    {"type": "string", "maxLength": browse.PATH_MAX, "pattern": "^[^\\u0000-\\u001f\\u007f]*$"},
    description="A path in the snapshot's root file system, from `/` (no `.` or `..`).",
)
CURSOR = OpenApiParameter(
    "cursor",
    {"type": "string", "maxLength": browse.CURSOR_MAX, "pattern": "^[A-Za-z0-9_-]*$"},
    description="Where a page starts: taken from the `next` link of the page before.",
)
WITH = OpenApiParameter(
    "with",
    OpenApiTypes.UUID,
    description="The snapshot to compare with (the older side); by default the one before it.",
)
ERRORS_BROWSE = {
    **ERRORS_READ,
    400: error(
        "The path is not allowed (`..`, control characters) or names a symbolic link, or the "
        "cursor was not handed out here."
    ),
    404: error("No such snapshot among yours, or no such path in it."),
    409: error(
        "The disk cannot be browsed: not ready, no ext2/3/4 file system (or a partition "
        "table), or not on this machine. The message says which."
    ),
    422: error(
        "The file system is damaged where it was read (a bad superblock, block map, folder "
        "record or inode number), or holds more than one request reads. The message says "
        "which."
    ),
}


class EntrySerializer(serializers.Serializer):
    path = serializers.CharField()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=[*browse.TYPES.values(), "unknown"])
    size = serializers.IntegerField()
    mode = serializers.CharField(help_text="As `ls -l` shows it, e.g. `-rw-r--r--`.")
    permissions = serializers.IntegerField()
    uid = serializers.IntegerField()
    gid = serializers.IntegerField()
    modified = serializers.DateTimeField()
    target = serializers.CharField(
        allow_null=True, help_text="A symbolic link's target (shown, never followed)."
    )


class FilesSerializer(serializers.Serializer):
    snapshot = serializers.UUIDField()
    filesystem = serializers.CharField(help_text="ext2, ext3 or ext4.")
    needs_recovery = serializers.BooleanField(
        help_text="The file system's journal was not replayed (a snapshot of a running guest): "
        "the last changes before the snapshot may be missing here."
    )
    entry = EntrySerializer()
    entries = EntrySerializer(
        many=True,
        allow_null=True,
        help_text=f"One page of a folder's entries, at most {browse.PAGE_ENTRIES}, folders first "
        "then by name (null for anything else).",
    )
    next = serializers.URLField(
        allow_null=True, help_text="The next page of the folder's entries; null on the last."
    )


class ChangeSerializer(serializers.Serializer):
    path = serializers.CharField()
    type = serializers.CharField()
    size_before = serializers.IntegerField(allow_null=True)
    size_after = serializers.IntegerField(allow_null=True)
    changes = serializers.ListField(
        child=serializers.ChoiceField(
            choices=[
                "type",
                "mode",
                "owner",
                "size",
                "modified",
                "target",
                "content",
                "content_not_compared",
            ]
        ),
        help_text="`content_not_compared`: a file too large to compare within one page.",
    )
    diff = serializers.CharField(
        allow_null=True, help_text="A unified diff, for small text files whose content changed."
    )


class ComparisonSerializer(serializers.Serializer):
    snapshot = serializers.UUIDField(help_text="The newer side: what it has.")
    compared_with = serializers.UUIDField(help_text="The older side.")
    needs_recovery = serializers.BooleanField()
    added = ChangeSerializer(many=True)
    removed = ChangeSerializer(many=True)
    changed = ChangeSerializer(many=True)
    entries_compared = serializers.IntegerField()
    bytes_compared = serializers.IntegerField(help_text="File contents read to compare.")
    next = serializers.URLField(
        allow_null=True,
        help_text=f"The next page of changes (a page holds at most {browse.PAGE_ENTRIES}, and "
        "stops early when it has read as much as one request may); null on the last.",
    )


class _Binary(BaseRenderer):
    """File contents; an error met before any byte is sent is JSON in the usual shape."""

    media_type = "application/octet-stream"
    format = "bin"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()


def _snapshot(request, pk) -> Snapshot:
    return get_owned_or_404(Snapshot.objects.owned_by(request.user), pk)


def _refusal(exc: browse.BrowseError) -> Response:
    if isinstance(exc, browse.BadCursor):
        return Response(
            error_body("invalid", exc.message, fields={"cursor": [exc.message]}), status=400
        )
    if isinstance(exc, browse.Damaged):
        return Response(error_body("damaged", exc.message), status=422)
    if isinstance(exc, browse.TooLarge):
        return Response(error_body("too_large", exc.message), status=422)
    if isinstance(exc, browse.BadPath | browse.WrongType):
        return Response(
            error_body("invalid", exc.message, fields={"path": [exc.message]}), status=400
        )
    if isinstance(exc, browse.PathNotFound):
        return Response(error_body("not_found", exc.message), status=404)
    return Response(error_body("not_browsable", exc.message), status=409)


def _entry(entry: browse.Entry) -> dict:
    return EntrySerializer(entry).data


def _next(request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = request.GET.copy()
    query["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


@extend_schema(
    parameters=[ID_PARAMETER, PATH, CURSOR],
    responses={200: FilesSerializer, **ERRORS_BROWSE},
)
@api_view(["GET"])
def snapshot_files(request, id):
    """What is at a path of the snapshot's root file system: the entry, and a page of a folder's
    entries with a link to the next. Symbolic links are shown with their target (up to
    4096 bytes), never followed."""
    snapshot = _snapshot(request, id)
    try:
        with browse.snapshot_open(snapshot) as disk:
            entry = disk.stat(request.query_params.get("path"))
            cursor = request.query_params.get("cursor")
            listing = disk.listdir(entry.path, cursor) if entry.is_dir else None
            body = {
                "snapshot": snapshot.pk,
                "filesystem": disk.fs_type,
                "needs_recovery": disk.needs_recovery,
                "entry": _entry(entry),
                "entries": [_entry(e) for e in listing] if listing is not None else None,
                "next": _next(request, listing.next) if listing is not None else None,
            }
    except browse.BrowseError as exc:
        return _refusal(exc)
    return Response(body)


@extend_schema(
    parameters=[ID_PARAMETER, PATH],
    responses={
        (200, "application/octet-stream"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The file's bytes, with its `Content-Length`."
        ),
        **{code: answer for code, answer in ERRORS_BROWSE.items() if code != 200},
    },
)
@api_view(["GET"])
@renderer_classes([JSONRenderer, _Binary])
def snapshot_file_content(request, id):
    """Download a regular file of the snapshot, streamed whatever its size."""
    snapshot = _snapshot(request, id)
    try:
        disk = browse.snapshot_open(snapshot)
    except browse.BrowseError as exc:
        return _refusal(exc)
    try:
        entry, stream = disk.open_file(request.query_params.get("path"))
    except browse.BrowseError as exc:
        disk.close()
        return _refusal(exc)
    return file_response(disk, entry, stream)


def file_response(disk: browse.SnapshotDisk, entry: browse.Entry, stream) -> StreamingHttpResponse:
    """A streamed download of a file of the disk, which closes the disk when it ends."""
    response = StreamingHttpResponse(
        _Closing(disk, disk.chunks(stream, entry.size)), content_type="application/octet-stream"
    )
    response["Content-Length"] = str(entry.size)
    response["Content-Disposition"] = content_disposition_header(True, entry.name)
    response["X-Content-Type-Options"] = "nosniff"
    return response


class _Closing:
    """An iterator of chunks that closes the disk after the last one (or when abandoned)."""

    def __init__(self, disk, chunks):
        self.disk, self.chunks = disk, chunks

    def __iter__(self):
        try:
            yield from self.chunks
        finally:
            self.disk.close()

    def close(self):
        self.disk.close()


@extend_schema(
    parameters=[ID_PARAMETER, WITH, CURSOR],
    responses={200: ComparisonSerializer, **ERRORS_BROWSE},
)
@api_view(["GET"])
def snapshot_compare(request, id):
    """One page of the files added, removed and changed from another snapshot (by default the
    one before this one) to this one, in path order, with sizes; a unified diff for small text
    files; and a link to the next page."""
    snapshot = _snapshot(request, id)
    other_id = query_uuid(request, "with") or snapshot.parent_id
    if other_id is None:
        message = "This snapshot has none before it; give another snapshot to compare with."
        return Response(error_body("invalid", message, fields={"with": [message]}), status=400)
    other = get_owned_or_404(Snapshot.objects.owned_by(request.user), uuid.UUID(str(other_id)))
    try:
        result = browse.snapshots_compare(
            old=other, new=snapshot, cursor=request.query_params.get("cursor")
        )
    except browse.BrowseError as exc:
        return _refusal(exc)
    return Response(
        {
            "snapshot": snapshot.pk,
            "compared_with": other.pk,
            "needs_recovery": result.needs_recovery,
            "added": ChangeSerializer(result.added, many=True).data,
            "removed": ChangeSerializer(result.removed, many=True).data,
            "changed": ChangeSerializer(result.changed, many=True).data,
            "entries_compared": result.entries_compared,
            "bytes_compared": result.bytes_compared,
            "next": _next(request, result.next),
        }
    )
