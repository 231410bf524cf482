"""The quarantine folder: where uploaded disk images are written while they are checked.

Uploads are streamed straight into it (never into memory, never into a storage pool) by
`QuarantineUploadHandler`, which a view installs before the request body is read. Every file
here is deleted when its import ends, whatever the outcome.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile


def folder() -> Path:
    path = Path(settings.QUARANTINE_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def new_path(suffix: str) -> Path:
    """A fresh file name in quarantine, derived from nothing the user sent."""
    return folder() / f"{uuid.uuid4()}{suffix}"


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
    """Stream every uploaded file into quarantine; stop one that grows past IMPORT_MAX_MIB
    (`too_big` then says so)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.IMPORT_MAX_MIB * 1024 * 1024
        self.too_big = False
        self.written = 0

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.written = 0
        self.file = QuarantinedFile(self.file_name, self.content_type, 0, self.charset)

    def receive_data_chunk(self, raw_data, start):
        self.written += len(raw_data)
        if self.written > self.limit:
            self.too_big = True
            self.file.close()
            raise SkipFile
        self.file.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.file.seek(0)
        self.file.size = file_size
        os.fsync(self.file.fileno())
        return self.file

    def upload_interrupted(self):
        if hasattr(self, "file"):
            self.file.close()


def install(request) -> QuarantineUploadHandler:
    """Make `request` (a Django HttpRequest whose body is not read yet) upload into quarantine."""
    handler = QuarantineUploadHandler(request)
    request.upload_handlers = [handler]
    return handler
