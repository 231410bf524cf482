"""Disk image files from outside: what they are, whether they are safe, and rewriting them.

An uploaded image is hostile until proven otherwise. QEMU follows what a qcow2 header names: a
backing file or an external data file would have the host's files read into the guest's disk,
and a libvirt pool probes formats by content. So every check names the format (`-f`, never a
probe), and every `qemu-img` run on a foreign file has its memory, CPU time and wall time
limited. Nothing here touches the database or libvirt.
"""

from __future__ import annotations

import json
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("qcow2", "raw")
MIN_VIRTUAL_SIZE = 1024**2

# Limits of one `qemu-img` run on a foreign file: address space, CPU seconds, wall seconds.
INSPECT_LIMITS = (1024**3, 30, 60)
CONVERT_LIMITS = (2 * 1024**3, 3600, 3600)

QCOW2_MAGIC = b"QFI\xfb"
QCOW2_INCOMPAT_DATA_FILE = 1 << 2
QCOW2_EXTENSION_DATA_FILE = 0x44415441


class RefusedImage(ValueError):
    """An uploaded image the service will not take; the message says why, for the user."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    virtual_size: int
    file_size: int


def _other_format(head: bytes, tail: bytes) -> str | None:
    """The name of a disk image format other than qcow2 and raw that the bytes are, if known."""
    if head.startswith(b"KDMV") or head.startswith(b"COWD") or b"# Disk DescriptorFile" in head:
        return "VMDK"
    if head.startswith(b"vhdxfile"):
        return "VHDX"
    if head.startswith(b"conectix") or tail.startswith(b"conectix"):
        return "VHD"
    if len(head) >= 68 and head[64:68] == b"\x7f\x10\xda\xbe":
        return "VDI"
    if head.startswith(b"QED\x00"):
        return "QED"
    if head.startswith(b"LUKS\xba\xbe"):
        return "LUKS"
    if head.startswith(b"WithoutFreeSpace") or head.startswith(b"WithouFreSpacExt"):
        return "Parallels"
    if head.startswith(b"Bochs Virtual HD Image"):
        return "Bochs"
    if head.startswith(b"#!/bin/sh") and b"cloop" in head:
        return "cloop"
    if head.startswith(b"OOOM"):
        return "QEMU COW (qcow version 1)"
    if head.startswith(QCOW2_MAGIC):
        return "qcow2"
    return None


def check_magic(path: Path, fmt: str) -> None:
    """Refuse a file whose content is not the format it was declared as. A qcow2 header is read
    here too: a backing file, an external data file or encryption is refused before any program
    parses the file."""
    if fmt not in FORMATS:
        raise RefusedImage(f"Choose the image's format: {' or '.join(FORMATS)}.")
    size = path.stat().st_size
    if size == 0:
        raise RefusedImage("The file is empty.")
    with path.open("rb") as handle:
        head = handle.read(4096)
        handle.seek(max(0, size - 512))
        tail = handle.read(512)
    other = _other_format(head, tail)
    if fmt == "raw":
        if other is not None:
            hint = " Choose qcow2 as its format." if other == "qcow2" else ""
            raise RefusedImage(
                f"The file is a {other} image, not a raw disk; only qcow2 and raw images can be "
                f"imported.{hint}"
            )
        return
    if other not in (None, "qcow2"):
        raise RefusedImage(
            f"The file is a {other} image, not qcow2; only qcow2 and raw images can be imported. "
            "Convert it to qcow2 first (qemu-img convert -O qcow2)."
        )
    if other is None:
        raise RefusedImage("The file is not a qcow2 image (its first bytes are not qcow2's).")
    _check_qcow2_header(head, size)


def _check_qcow2_header(head: bytes, size: int) -> None:
    if len(head) < 72:
        raise RefusedImage("The qcow2 image is cut short: its header is incomplete.")
    version, backing_offset, backing_size = struct.unpack(">IQI", head[4:20])
    crypt_method = struct.unpack(">I", head[32:36])[0]
    if version not in (2, 3):
        raise RefusedImage(f"The file is a qcow2 image of version {version}, which is not taken.")
    if backing_offset or backing_size:
        raise RefusedImage(
            "The qcow2 image names a backing file; only self-contained images are taken. "
            "Flatten it first (qemu-img convert -O qcow2)."
        )
    if crypt_method:
        raise RefusedImage("The qcow2 image is encrypted; import an unencrypted image.")
    if version == 3 and len(head) >= 104:
        incompatible = struct.unpack(">Q", head[72:80])[0]
        if incompatible & QCOW2_INCOMPAT_DATA_FILE:
            raise RefusedImage(_DATA_FILE_REFUSED)
        header_length = struct.unpack(">I", head[100:104])[0]
        offset = (header_length + 7) & ~7
        while offset + 8 <= len(head):
            kind, length = struct.unpack(">II", head[offset : offset + 8])
            if kind == 0:
                break
            if kind == QCOW2_EXTENSION_DATA_FILE:
                raise RefusedImage(_DATA_FILE_REFUSED)
            offset += 8 + ((length + 7) & ~7)


_DATA_FILE_REFUSED = (
    "The qcow2 image keeps its data in an external file; only self-contained images are taken."
)


def limited(argv: list[str], limits: tuple[int, int, int]) -> subprocess.CompletedProcess:
    """Run a program with its address space and CPU time capped (`prlimit`) and a timeout."""
    memory, cpu, wall = limits
    try:
        return subprocess.run(
            ["prlimit", f"--as={memory}", f"--cpu={cpu}", "--", *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=wall,
        )
    except subprocess.TimeoutExpired:
        raise RefusedImage(
            "Reading the image took too long; it was given up. Check the file and try again."
        ) from None


def _said(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    # qemu-img names the file by its path on this machine: keep what it says after that.
    text = lines[-1] if lines else "no reason given"
    return text.rsplit("': ", 1)[-1]


def inspect(path: Path, fmt: str, *, max_virtual_size: int) -> ImageInfo:
    """Check a foreign image with `qemu-img info` and (qcow2) `qemu-img check`, under limits.
    Call `check_magic` first."""
    result = limited(["qemu-img", "info", "-f", fmt, "--output=json", str(path)], INSPECT_LIMITS)
    if result.returncode != 0:
        raise RefusedImage(f"The file is not a readable {fmt} image: {_said(result)}.")
    try:
        info = json.loads(result.stdout)
    except ValueError:
        raise RefusedImage(f"The file is not a readable {fmt} image.") from None
    if info.get("format") != fmt:
        raise RefusedImage(f"The file is not a {fmt} image.")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise RefusedImage(
            "The qcow2 image names a backing file; only self-contained images are taken."
        )
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file") or specific.get("data-file-raw"):
        raise RefusedImage(_DATA_FILE_REFUSED)
    if info.get("encrypted") or specific.get("encrypt"):
        raise RefusedImage("The qcow2 image is encrypted; import an unencrypted image.")
    virtual_size = int(info.get("virtual-size") or 0)
    if virtual_size < MIN_VIRTUAL_SIZE:
        raise RefusedImage(
            f"The image's disk is {_size(virtual_size)}, too small to hold a root file system "
            f"(at least {_size(MIN_VIRTUAL_SIZE)})."
        )
    if virtual_size % 512:
        raise RefusedImage("The image's disk size is not a whole number of 512-byte sectors.")
    if virtual_size > max_virtual_size:
        raise RefusedImage(
            f"The image's disk is {_size(virtual_size)}; the largest disk a VM may have is "
            f"{_size(max_virtual_size)}."
        )
    if fmt == "qcow2":
        checked = limited(
            ["qemu-img", "check", "-f", "qcow2", "--output=json", str(path)], INSPECT_LIMITS
        )
        # 0: clean; 3: only leaked clusters (wasted space, harmless and dropped by the rewrite).
        if checked.returncode not in (0, 3):
            raise RefusedImage(
                "The qcow2 image is damaged (qemu-img check found errors); it was not imported."
            )
    return ImageInfo(format=fmt, virtual_size=virtual_size, file_size=path.stat().st_size)


def rewrite(source: Path, fmt: str, target: Path) -> None:
    """Write the image anew as a plain qcow2 of the service's own making: nothing of the
    uploaded file's structure (its header extensions, its tables) survives."""
    result = limited(
        [
            "qemu-img",
            "convert",
            "-f",
            fmt,
            "-O",
            "qcow2",
            "-o",
            "compat=1.1",
            str(source),
            str(target),
        ],
        CONVERT_LIMITS,
    )
    if result.returncode != 0:
        target.unlink(missing_ok=True)
        raise RefusedImage(f"The image could not be read through: {_said(result)}.")


def chain_spec(paths: list[str]) -> str:
    """A qemu-img file name opening exactly these layers (bottom-up) as one disk: the chain is
    the database's, not what the files' headers name."""
    spec: dict | None = None
    for path in paths:
        spec = {
            "driver": "qcow2",
            "file": {"driver": "file", "filename": path},
            "backing": spec,
        }
    return "json:" + json.dumps(spec)


def export_chain(paths: list[str], target: Path) -> None:
    """Flatten a chain of the service's own layers into one compressed, self-contained qcow2."""
    result = subprocess.run(
        [
            "qemu-img",
            "convert",
            "-f",
            "qcow2",
            "-O",
            "qcow2",
            "-c",
            "-o",
            "compression_type=zstd",
            chain_spec(paths),
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        target.unlink(missing_ok=True)
        raise RuntimeError(f"qemu-img convert failed: {result.stderr.strip()}")


def virtual_size(path: Path) -> int:
    """The disk size of a qcow2 file the service wrote itself."""
    result = subprocess.run(
        ["qemu-img", "info", "-f", "qcow2", "--output=json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(result.stdout)["virtual-size"])


def _size(n: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return filesizeformat(n)
