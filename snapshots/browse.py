"""Looking inside a snapshot: list its root file system, read a file, compare two snapshots.

The reading is the `diskread` library's: a chain of qcow2 layer files and the ext2/3/4 file
system on top, read in this process within fixed limits. This module is its adapter: it finds a
snapshot's layers as the database records them (`vms.layers.layer_chain`), refuses any a VM
writes to, turns them into files on this machine, and maps the library's errors to the errors
users see (`BrowseError` and its kinds, which the pages and the API turn into status codes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import diskread
from core.errors import ServiceError
from diskread import (
    CURSOR_MAX,
    PAGE_ENTRIES,
    PATH_MAX,
    TEXT_PREVIEW_BYTES,
    TYPES,
    Comparison,
    Entry,
    Listing,
    join_path,
)
from snapshots.models import SnapshotState
from vms.hypervisor import uri_is_local
from vms.layers import layer_chain, layer_holders
from vms.models import VM, Layer, LayerState

__all__ = [
    "CURSOR_MAX",
    "PAGE_ENTRIES",
    "PATH_MAX",
    "TEXT_PREVIEW_BYTES",
    "TYPES",
    "BadCursor",
    "BadPath",
    "BrowseError",
    "Comparison",
    "Damaged",
    "Entry",
    "Listing",
    "NotBrowsable",
    "PathNotFound",
    "SnapshotDisk",
    "TooLarge",
    "WrongType",
    "join_path",
    "layer_file",
    "snapshot_chain",
    "snapshot_open",
    "snapshots_compare",
]


class BrowseError(ServiceError):
    """A look inside a snapshot that cannot be answered as asked."""


class NotBrowsable(BrowseError):
    """The snapshot's disk cannot be read here: not ready, not an ext2/3/4 file system, a
    partition table, layers missing from this machine, or damaged data."""


class Damaged(NotBrowsable):
    """The file system breaks its own rules where it was read: what the guest wrote cannot be
    shown."""


class TooLarge(NotBrowsable):
    """Legal, but more than one request reads: a folder of millions of entries, a block map
    of too many pieces."""


class BadCursor(BrowseError):
    """A `cursor` that this service did not hand out."""


class BadPath(BrowseError):
    """A path that is not allowed (`..`, control characters, too long) or names a symbolic link
    where a folder or file is needed."""


class PathNotFound(BrowseError):
    """No such file or folder in the snapshot."""


class WrongType(BrowseError):
    """The path names a folder where a file is needed, a device, or the like."""


# The library's errors, most specific first, and the error users see for each.
_ERRORS: list[tuple[type[diskread.ReadError], type[BrowseError]]] = [
    (diskread.Damaged, Damaged),
    (diskread.TooLarge, TooLarge),
    (diskread.NotReadable, NotBrowsable),
    (diskread.BadCursor, BadCursor),
    (diskread.BadPath, BadPath),
    (diskread.PathNotFound, PathNotFound),
    (diskread.WrongType, WrongType),
]


def browse_error(exc: diskread.ReadError) -> BrowseError:
    """The error users see for an error of the reader, with its sentence."""
    for library, ours in _ERRORS:
        if isinstance(exc, library):
            return ours(exc.message)
    return BrowseError(exc.message)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except diskread.ReadError as exc:
        raise browse_error(exc) from exc


class SnapshotDisk:
    """A snapshot's disk, opened read-only (`diskread.Disk`), whose refusals are `BrowseError`s.

    Use as a context manager, or call `close()`: it holds one open file per layer.
    """

    def __init__(self, disk: diskread.Disk):
        self.disk = disk
        self.fs_type = disk.fs_type
        self.needs_recovery = disk.needs_recovery

    def stat(self, path: str | None) -> Entry:
        """The entry at `path` (a symbolic link itself, not what it points to)."""
        with _mapped():
            return self.disk.stat(path)

    def listdir(self, path: str | None, cursor: str | None = None) -> Listing:
        """One page of a folder's entries, folders first, then by name, after `cursor`."""
        with _mapped():
            return self.disk.listdir(path, cursor)

    def open_file(self, path: str | None):
        """`(entry, stream)` of a regular file; anything else is refused."""
        with _mapped():
            return self.disk.open_file(path)

    def read_text(self, path: str | None) -> str | None:
        """A small file's contents as text, or None when it is too large to show or not text."""
        with _mapped():
            return self.disk.read_text(path)

    def chunks(self, stream, size: int) -> Iterator[bytes]:
        """A file's contents in pieces of at most `CHUNK` bytes, for a download of any size."""
        with _mapped():
            yield from self.disk.chunks(stream, size)

    def close(self) -> None:
        self.disk.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- Snapshots: their layers, as the database records them ----------------------------------------


def snapshot_chain(snapshot) -> list[Layer]:
    """The layers of a snapshot's disk, bottom-up, refused unless every one is immutable: the
    snapshot is ready and no VM writes to any of them."""
    if snapshot.state != SnapshotState.READY or snapshot.layer_id is None:
        raise NotBrowsable("This snapshot is not ready yet; try again when it is.")
    chain = layer_chain(Layer.objects.select_related("host").get(pk=snapshot.layer_id))
    if any(layer.state != LayerState.READY for layer in chain):
        raise NotBrowsable("A layer of this snapshot is being changed; try again shortly.")
    if VM.objects.filter(active_layer__in=[layer.pk for layer in chain]).exists():
        raise NotBrowsable("A VM is writing to this disk, so it cannot be read as a snapshot.")
    return chain


def layer_file(layer: Layer) -> Path:
    """Where a layer's file is on this machine: the pool folder of a host here that holds it
    (the one it was made on, or one with a copy), and the name derived from its id."""
    for host in layer_holders(layer):
        if uri_is_local(host.libvirt_uri):
            return Path(host.pool_path) / layer.volume_name
    raise NotBrowsable(
        f"This snapshot's disk is on host {layer.host.name}, another machine; files are read "
        "only from disks on the machine that serves these pages."
    )


def snapshot_open(snapshot) -> SnapshotDisk:
    """The snapshot's disk, opened read-only (close it, or use it as a context manager)."""
    files = [layer_file(layer) for layer in snapshot_chain(snapshot)]
    with _mapped():
        return SnapshotDisk(diskread.Disk(files))


def snapshots_compare(*, old, new, diffs: bool = True, cursor: str | None = None) -> Comparison:
    """One page of what differs from snapshot `old` to snapshot `new`: files added, removed and
    changed, after `cursor`."""
    old_chain, new_chain = snapshot_chain(old), snapshot_chain(new)
    common = 0
    for a, b in zip(old_chain, new_chain, strict=False):
        if a.pk != b.pk:
            break
        common += 1
    old_files = [layer_file(layer) for layer in old_chain]
    new_files = [layer_file(layer) for layer in new_chain]
    try:
        with _mapped():
            return diskread.compare_chains(
                old_files, new_files, common=common, diffs=diffs, cursor=cursor
            )
    except OSError:
        # Only reading the layers' cluster tables lets one out: a layer file missing here.
        raise NotBrowsable(
            "A layer of these snapshots is not on this machine; they cannot be compared here."
        ) from None
