"""libvirt's QEMU save file (what a memory snapshot writes), read and written again with another
definition in its header, so that the memory saved from one domain resumes as another (a fork).

libvirt 9.0's restore refuses a definition whose UUID or name differs from the one saved in the
file, and has no call to change them. The header is a fixed layout (libvirt's
`virQEMUSaveHeader`): a 16-byte magic, then six little-endian 32-bit words (version, data_len,
was_running, compressed, cookieOffset) and fourteen unused ones; the definition, NUL-terminated,
starts at byte 92, the cookie at 92 + cookieOffset, and QEMU's migration stream at 92 + data_len.
A copy is written with the new definition: header, definition, cookie, padding, then the stream
copied byte for byte (in the kernel, without passing through this process).
"""

from __future__ import annotations

import os
import struct

MAGIC = b"LibvirtQemudSave"
PARTIAL_MAGIC = b"LibvirtQemudPart"  # a save that did not finish
HEADER = struct.Struct("<16s19I")
assert HEADER.size == 92
# Room left after the definition, as libvirt leaves it, so that it can be edited in place later.
PADDING = 64 * 1024
MAX_HEADER_DATA = 16 * 1024 * 1024


class SaveFileError(ValueError):
    """Not a complete libvirt save file, or one this code does not know."""


def _read_header(handle) -> tuple[list[int], bytes, bytes]:
    raw = handle.read(HEADER.size)
    if len(raw) != HEADER.size:
        raise SaveFileError("The memory file is too short to be a saved memory state.")
    magic, *words = HEADER.unpack(raw)
    if magic == PARTIAL_MAGIC:
        raise SaveFileError("The memory file was not completely written.")
    if magic != MAGIC:
        raise SaveFileError("The memory file is not a libvirt saved memory state.")
    version, data_len, _running, compressed, cookie_offset = words[:5]
    if version != 2 or compressed != 0:
        raise SaveFileError(f"Saved memory of format {version}/{compressed} is not supported.")
    if not 0 < data_len <= MAX_HEADER_DATA or cookie_offset > data_len:
        raise SaveFileError("The memory file's header is damaged.")
    data = handle.read(data_len)
    if len(data) != data_len:
        raise SaveFileError("The memory file's header is damaged.")
    end = cookie_offset if cookie_offset else data_len
    xml = data[:end].split(b"\0", 1)[0]
    cookie = data[cookie_offset:].split(b"\0", 1)[0] if cookie_offset else b""
    return words, xml, cookie


def saved_definition(path: str) -> str:
    """The domain definition saved in a memory file's header."""
    with open(path, "rb") as handle:
        return _read_header(handle)[1].decode()


def write_with_definition(source: str, target: str, xml: str) -> None:
    """Write to `target` a copy of the save file `source` whose header holds `xml` instead."""
    with open(source, "rb") as src:
        words, _old, cookie = _read_header(src)
        stream_at = src.tell()
        stream_bytes = os.fstat(src.fileno()).st_size - stream_at
        definition = xml.encode() + b"\0"
        data = definition + (cookie + b"\0" if cookie else b"")
        data += b"\0" * PADDING
        words = list(words)
        words[1] = len(data)  # data_len
        words[4] = len(definition) if cookie else 0  # cookieOffset
        with open(target, "wb") as dst:
            dst.write(HEADER.pack(MAGIC, *words))
            dst.write(data)
            dst.flush()
            offset_in, offset_out = stream_at, HEADER.size + len(data)
            left = stream_bytes
            while left > 0:
                copied = os.copy_file_range(
                    src.fileno(), dst.fileno(), min(left, 1 << 30), offset_in, offset_out
                )
                if copied == 0:
                    raise SaveFileError("The memory file ended before its stream did.")
                offset_in += copied
                offset_out += copied
                left -= copied
