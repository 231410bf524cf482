"""A saved memory file written again with another definition in its header (what a fork resumes
from): the definition and the cookie as given, QEMU's stream byte for byte."""

import os
import struct

import pytest

from vms.hypervisor import savefile

STREAM = os.urandom(300_000)


def save_file(path, xml: bytes, cookie: bytes = b"<cookie/>", *, magic=savefile.MAGIC) -> None:
    """A save file laid out as libvirt writes one: definition, cookie, padding, stream."""
    data = xml + b"\0" + cookie + b"\0" + b"\0" * 4096
    words = [2, len(data), 1, 0, len(xml) + 1] + [0] * 14
    path.write_bytes(struct.pack("<16s19I", magic, *words) + data + STREAM)


def stream_of(path) -> bytes:
    raw = path.read_bytes()
    data_len = struct.unpack_from("<I", raw, 20)[0]
    return raw[92 + data_len :]


def cookie_of(path) -> bytes:
    raw = path.read_bytes()
    cookie_offset = struct.unpack_from("<I", raw, 32)[0]
    return raw[92 + cookie_offset :].split(b"\0", 1)[0]


def test_the_definition_saved_in_a_memory_file_is_read(tmp_path):
    save_file(tmp_path / "m", b"<domain><name>a</name></domain>")
    assert savefile.saved_definition(str(tmp_path / "m")) == "<domain><name>a</name></domain>"


def test_a_copy_holds_a_longer_definition_the_same_cookie_and_the_same_stream(tmp_path):
    save_file(tmp_path / "m", b"<domain><name>a</name></domain>")
    longer = "<domain><name>" + "b" * 100_000 + "</name></domain>"
    savefile.write_with_definition(str(tmp_path / "m"), str(tmp_path / "copy"), longer)
    assert savefile.saved_definition(str(tmp_path / "copy")) == longer
    assert cookie_of(tmp_path / "copy") == b"<cookie/>"
    assert stream_of(tmp_path / "copy") == STREAM


def test_a_copy_of_a_file_without_a_cookie_has_none(tmp_path):
    path = tmp_path / "m"
    data = b"<domain/>\0" + b"\0" * 100
    words = [2, len(data), 1, 0, 0] + [0] * 14
    path.write_bytes(struct.pack("<16s19I", savefile.MAGIC, *words) + data + STREAM)
    savefile.write_with_definition(str(path), str(tmp_path / "copy"), "<domain><x/></domain>")
    assert struct.unpack_from("<I", (tmp_path / "copy").read_bytes(), 32)[0] == 0
    assert stream_of(tmp_path / "copy") == STREAM


def test_a_save_that_did_not_finish_is_refused(tmp_path):
    save_file(tmp_path / "m", b"<domain/>", magic=savefile.PARTIAL_MAGIC)
    with pytest.raises(savefile.SaveFileError, match="not completely written"):
        savefile.saved_definition(str(tmp_path / "m"))


@pytest.mark.parametrize(
    "content",
    [b"", b"LibvirtQemudSave", b"NotASaveFileAtAll" + b"\0" * 200],
)
def test_what_is_not_a_save_file_is_refused(tmp_path, content):
    (tmp_path / "m").write_bytes(content)
    with pytest.raises(savefile.SaveFileError):
        savefile.saved_definition(str(tmp_path / "m"))


def test_a_header_that_claims_more_than_the_file_holds_is_refused(tmp_path):
    words = [2, 10_000_000, 1, 0, 0] + [0] * 14
    (tmp_path / "m").write_bytes(struct.pack("<16s19I", savefile.MAGIC, *words) + b"<x/>")
    with pytest.raises(savefile.SaveFileError, match="damaged"):
        savefile.saved_definition(str(tmp_path / "m"))
