"""The quarantine folder: where uploaded disk images wait, and are checked and rewritten.

Uploads are streamed straight into it (never into memory, never into a storage pool) by
`QuarantineUploadHandler`, which a view installs before the request body is read. The handler
takes one file per request and stops a file that grows past its limits or that would leave the
folder's file system with less than IMPORT_MIN_FREE_MIB free. Every file here is deleted when
its import ends, whatever the outcome.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile

MiB = 1024**2
# How often (in bytes written) a stream checks the free space it leaves, and how much it asks
# for ahead of each check.
SPACE_CHECK_EVERY = 8 * MiB


def folder() -> Path:
    path = Path(settings.QUARANTINE_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def new_path(suffix: str) -> Path:
    """A fresh file name in quarantine, derived from nothing the user sent."""
    return folder() / f"{uuid.uuid4()}{suffix}"


def free_bytes() -> int:
    """Bytes free (for an unprivileged writer) on the quarantine's file system."""
    stat = os.statvfs(folder())
    return stat.f_bavail * stat.f_frsize


def floor_bytes() -> int:
    return settings.IMPORT_MIN_FREE_MIB * MiB


def has_room(adding: int = 0) -> bool:
    """Whether `adding` more bytes would leave at least IMPORT_MIN_FREE_MIB free."""
    return free_bytes() - adding >= floor_bytes()


def keep(upload: Path) -> Path:
    """Give an uploaded file (in quarantine) a name of its own, so that it outlives the request
    (closing the upload removes only its temporary name). Whoever keeps it deletes it."""
    path = new_path(".upload")
    os.link(upload, path)
    return path


class QuarantinedFile(UploadedFile):
    """An uploaded file written into the quarantine folder; deleted when closed."""

    def __init__(self, name, content_type, size, charset, content_type_extra=None):
        file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - deleted when closed
            prefix="upload-", suffix=".part", dir=folder()
        )
        super().__init__(file, name, content_type, size, charset, content_type_extra)

    def temporary_file_path(self) -> str:
        return self.file.name

    def close(self):
        try:
            return self.file.close()
        except FileNotFoundError:
            pass  # deleted already


class QuarantineUploadHandler(FileUploadHandler):
    """Stream the request's one uploaded file into quarantine, and stop (flag, close, delete) it
    when it is not the first file part (`files` counts them), grows past IMPORT_MAX_MIB
    (`too_big`) or past `plan_limit` (`over_plan`, set by the view once the owner's plan is
    known), or would leave less than IMPORT_MIN_FREE_MIB free (`low_space`)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.IMPORT_MAX_MIB * MiB
        self.plan_limit: int | None = None
        self.files = 0
        self.too_big = False
        self.over_plan = False
        self.low_space = False
        self.written = 0
        self._space_checked_to = 0
        self._opened: list[QuarantinedFile] = []

    @property
    def refused(self) -> bool:
        return self.files > 1 or self.too_big or self.over_plan or self.low_space

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.files += 1
        if self.refused:
            self.discard()  # a second file part: the request is refused, keep nothing of it
            raise SkipFile
        self.written = 0
        self._space_checked_to = 0
        self.file = QuarantinedFile(self.file_name, self.content_type, 0, self.charset)
        self._opened.append(self.file)

    def receive_data_chunk(self, raw_data, start):
        self.written += len(raw_data)
        if self.written > self.limit:
            self.too_big = True
        elif self.plan_limit is not None and self.written > self.plan_limit:
            self.over_plan = True
        elif self.written > self._space_checked_to:
            self._space_checked_to = self.written + SPACE_CHECK_EVERY
            self.low_space = not has_room(len(raw_data) + SPACE_CHECK_EVERY)
        if self.refused:
            self.discard()
            raise SkipFile
        self.file.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.file.seek(0)
        self.file.size = file_size
        os.fsync(self.file.fileno())
        return self.file

    def upload_interrupted(self):
        self.discard()

    def discard(self) -> None:
        """Close (and so delete) every file this request wrote."""
        for opened in self._opened:
            opened.close()


def install(request) -> QuarantineUploadHandler:
    """Make `request` (a Django HttpRequest whose body is not read yet) upload into quarantine."""
    handler = QuarantineUploadHandler(request)
    request.upload_handlers = [handler]
    return handler
