"""Reading a guest's disk without booting or mounting it: a chain of qcow2 layer files with an
ext2/3/4 file system on top, read in this process by pure-Python readers (`dissect.hypervisor`,
`dissect.extfs`). A library: it knows nothing of the service that uses it, and is given the
layer files' paths, bottom first.

    with Disk(["base.qcow2", "top.qcow2"]) as disk:
        page = disk.listdir("/etc")            # a `Listing`, with `next` for the page after
        entry, stream = disk.open_file("/etc/hostname")
    page = compare_chains(["base.qcow2"], ["base.qcow2", "top.qcow2"])   # a `Comparison`

What the guest wrote is data, never a path on this machine: symbolic links are shown with their
target and never followed, and paths given by a caller are checked before they are looked up.
A disk of a running guest is crash-consistent and the reader does not replay the ext4 journal:
`Disk.needs_recovery` says when the journal still holds changes.

Every number the guest wrote is hostile: sizes, block maps, folder records, inode numbers. Each
read takes its length from a limit (`diskread.limits`), never from the file system alone: a
link's target is read up to `LINK_MAX` bytes, a block map up to `MAX_MAP_BLOCKS` blocks of tree
and `MAX_RUNS` pieces, a folder up to `MAX_DIR_BYTES`, and one request walks at most `LIST_WALK`
folder entries (`COMPARE_WALK` and `COMPARE_BYTES` for one page of a comparison). Folders and
comparisons come in pages of `PAGE_ENTRIES`, each with a cursor to the next. What breaks a rule
is `Damaged`, what is legal but larger than a request may read is `TooLarge`: every error is a
`ReadError` with a sentence, never a low-level exception.
"""

from diskread.compare import Change, Comparison, compare_chains, compare_disks, text_diff
from diskread.errors import (
    BadCursor,
    BadPath,
    Damaged,
    NotReadable,
    PathNotFound,
    ReadError,
    TooLarge,
    WrongType,
)
from diskread.filesystem import TYPES, Disk, Entry, Listing
from diskread.limits import (
    CHUNK,
    CURSOR_MAX,
    LINK_MAX,
    PAGE_ENTRIES,
    PATH_MAX,
    TEXT_PREVIEW_BYTES,
)
from diskread.paths import join_path, split_path
from diskread.qcow2 import Ranges, changed_ranges, common_layers, layer_ranges

__all__ = [
    "CHUNK",
    "CURSOR_MAX",
    "LINK_MAX",
    "PAGE_ENTRIES",
    "PATH_MAX",
    "TEXT_PREVIEW_BYTES",
    "TYPES",
    "BadCursor",
    "BadPath",
    "Change",
    "Comparison",
    "Damaged",
    "Disk",
    "Entry",
    "Listing",
    "NotReadable",
    "PathNotFound",
    "Ranges",
    "ReadError",
    "TooLarge",
    "WrongType",
    "changed_ranges",
    "common_layers",
    "compare_chains",
    "compare_disks",
    "join_path",
    "layer_ranges",
    "split_path",
    "text_diff",
]
