"""How much one request reads from the guest's disk, whatever its file system claims (see the
package's docstring)."""

MIB = 1024 * 1024
TEXT_PREVIEW_BYTES = 256 * 1024  # a file read whole as text by `Disk.read_text`
DIFF_TEXT_BYTES = 64 * 1024  # files up to this size (both sides) get a text diff
MAX_DIFFS = 200  # text diffs in one page of a comparison
MAX_DIFF_LINES = 2000  # lines of one diff shown
MAX_DIFF_INPUT_LINES = 5000  # lines of one side a diff is computed from (difflib is quadratic)
PATH_MAX = 4096
NAME_MAX = 255
CHUNK = MIB  # the largest piece of a file's contents `Disk.chunks` yields

PAGE_ENTRIES = 500  # entries of a folder, or changes of a comparison, in one page
CURSOR_MAX = 8192  # characters of a cursor
LINK_MAX = 4096  # bytes of a symbolic link's target read (Linux's PATH_MAX)
MAX_RUNS = 200_000  # pieces of one file's block map
MAX_MAP_BLOCKS = 8192  # extent-tree or indirect blocks read to map one file
MAX_DIR_BYTES = 128 * MIB  # a folder larger than this (about 3 million entries) is not read
MAX_DEPTH = 256  # folders deep a comparison descends
LIST_WALK = 2_000_000  # folder entries one request walks to look up a path and list a folder
COMPARE_WALK = 400_000  # folder entries one page of a comparison reads, both sides together
COMPARE_BYTES = 512 * MIB  # file contents one page of a comparison reads, both sides together
