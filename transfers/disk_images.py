"""Disk image files from outside: what they are, whether they are safe, and rewriting them.

An uploaded image is hostile until proven otherwise. QEMU follows what a qcow2 header names: a
backing file or an external data file would have the host's files read into the guest's disk,
and a libvirt pool probes formats by content. So every check names the format (`-f`, never a
probe), and every `qemu-img` run on a foreign file runs under `prlimit` (address space, bytes
it may write to a file, CPU seconds) and a wall-clock timeout, given by the caller as `Limits`.
Nothing here touches the database or libvirt.
"""

from __future__ import annotations

import json
import math
import re
import signal
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.sizes import size_text

FORMATS = ("qcow2", "raw")
MIN_VIRTUAL_SIZE = 1024**2

# Address space of one `qemu-img` run on a foreign file: reading it, and rewriting it.
INSPECT_MEMORY = 1024**3
CONVERT_MEMORY = 2 * 1024**3

QCOW2_MAGIC = b"QFI\xfb"
QCOW2_INCOMPAT_DATA_FILE = 1 << 2
QCOW2_EXTENSION_DATA_FILE = 0x44415441


class RefusedImage(ValueError):
    """An uploaded image the service will not take; the message says why, for the user."""


class TookTooLong(RefusedImage):
    """A `qemu-img` run on the image passed its wall-clock timeout and was killed."""


@dataclass(frozen=True)
class Limits:
    """What one `qemu-img` run on a foreign file may use: bytes of address space, bytes it may
    write into any one file (0: it only reads), and seconds, of wall clock and of CPU."""

    memory: int
    file_size: int
    seconds: int

    def for_reading(self) -> Limits:
        return Limits(memory=min(self.memory, INSPECT_MEMORY), file_size=0, seconds=self.seconds)


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


def limited(argv: list[str], limits: Limits) -> subprocess.CompletedProcess:
    """Run a program under `prlimit` (address space, file size, CPU time) and a wall-clock
    timeout; a run that passes the timeout is killed and refused with `TookTooLong`."""
    try:
        return subprocess.run(
            [
                "prlimit",
                f"--as={limits.memory}",
                f"--fsize={limits.file_size}",
                f"--cpu={max(1, math.ceil(limits.seconds))}",
                "--",
                *argv,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=limits.seconds,
        )
    except subprocess.TimeoutExpired:
        raise TookTooLong(
            f"Reading the image took longer than the {limits.seconds} s allowed, so the import "
            "was stopped; check that the file is a sound disk image and try again."
        ) from None


def _said(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    # qemu-img names the file by its path on this machine: keep what it says after that.
    text = lines[-1] if lines else "no reason given"
    return text.rsplit("': ", 1)[-1]


def declared_size(path: Path, fmt: str) -> int:
    """The disk size the file says it holds, read from its header alone (no program parses it):
    an early, cheap answer that `inspect` confirms. Call `check_magic` first."""
    if fmt == "raw":
        return path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(32)
    return struct.unpack(">Q", head[24:32])[0] if len(head) == 32 else 0


def inspect(path: Path, fmt: str, *, max_virtual_size: int, limits: Limits) -> ImageInfo:
    """Check a foreign image with `qemu-img info` and (qcow2) `qemu-img check`, under limits
    (read-only: it may write no file). Call `check_magic` first."""
    limits = limits.for_reading()
    result = limited(["qemu-img", "info", "-f", fmt, "--output=json", str(path)], limits)
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
            f"The image's disk is {size_text(virtual_size)}, too small to hold a root file system "
            f"(at least {size_text(MIN_VIRTUAL_SIZE)})."
        )
    if virtual_size % 512:
        raise RefusedImage("The image's disk size is not a whole number of 512-byte sectors.")
    if virtual_size > max_virtual_size:
        raise RefusedImage(
            f"The image's disk is {size_text(virtual_size)}; the largest disk a VM may have is "
            f"{size_text(max_virtual_size)}."
        )
    if fmt == "qcow2":
        checked = limited(["qemu-img", "check", "-f", "qcow2", "--output=json", str(path)], limits)
        # 0: clean; 3: only leaked clusters (wasted space, harmless and dropped by the rewrite).
        if checked.returncode not in (0, 3):
            raise RefusedImage(
                "The qcow2 image is damaged (qemu-img check found errors); it was not imported."
            )
    return ImageInfo(format=fmt, virtual_size=virtual_size, file_size=path.stat().st_size)


def measure(path: Path, fmt: str, *, limits: Limits) -> int:
    """The bytes the rewrite of the image into a qcow2 would write (`qemu-img measure`'s
    "required"), read-only and under limits: what a compressed image expands to."""
    result = limited(
        ["qemu-img", "measure", "--output=json", "-f", fmt, "-O", "qcow2", str(path)],
        limits.for_reading(),
    )
    if result.returncode != 0:
        raise RefusedImage(f"The image could not be measured: {_said(result)}.")
    try:
        return int(json.loads(result.stdout)["required"])
    except (ValueError, KeyError, TypeError):
        raise RefusedImage("The image could not be measured.") from None


def rewrite(source: Path, fmt: str, target: Path, *, limits: Limits) -> None:
    """Write the image anew as a plain qcow2 of the service's own making: nothing of the
    uploaded file's structure (its header extensions, its tables) survives. `limits.file_size`
    bounds what it may write (the measured size and a margin); past it the run is stopped."""
    argv = ["qemu-img", "convert", "-f", fmt, "-O", "qcow2", "-o", "compat=1.1"]
    try:
        result = limited([*argv, str(source), str(target)], limits)
    except TookTooLong:
        target.unlink(missing_ok=True)
        raise
    if result.returncode != 0:
        target.unlink(missing_ok=True)
        if result.returncode == -signal.SIGXFSZ or "File too large" in result.stderr:
            raise RefusedImage(
                f"The rewritten image grew past the {size_text(limits.file_size)} measured for it, "
                "so it was stopped; check that the file is a sound disk image and try again."
            )
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


# `qemu-img convert -p` redraws one line, "    (12.34/100%)", ending each with a carriage return.
PROGRESS = re.compile(rb"\((\d{1,3}(?:\.\d+)?)/100%\)")


def percents_in(output: bytes) -> list[float]:
    """The percentages `qemu-img -p` output states, in order (what is not one is ignored)."""
    return [min(100.0, float(found)) for found in PROGRESS.findall(output)]


def export_chain(paths: list[str], target: Path, *, on_progress=None) -> None:
    """Flatten a chain of the service's own layers into one compressed, self-contained qcow2.
    `on_progress(fraction)` hears how far the conversion is, at each whole percent it passes."""
    argv = ["qemu-img", "convert", "-p", "-f", "qcow2", "-O", "qcow2", "-c"]
    argv += ["-o", "compression_type=zstd", chain_spec(paths), str(target)]
    said = -1

    def heard(output: bytes) -> None:
        nonlocal said
        for percent in percents_in(output):
            if on_progress and int(percent) > said:
                said = int(percent)
                on_progress(percent / 100)

    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
        pending = b""
        try:
            while chunk := process.stdout.read1(4096):
                # Only whole redraws are read; a partial one waits for the rest of its line.
                whole, _, pending = (pending + chunk).rpartition(b"\r")
                heard(whole)
                pending = pending[-256:]
            heard(pending)  # the last redraw may end the output without a carriage return
        except BaseException:
            process.kill()  # a report that failed (or a stop) ends the conversion too
            target.unlink(missing_ok=True)
            raise
        finally:
            process.stdout.close()
            returncode = process.wait()
        errors.seek(0)
        stderr = errors.read(64 * 1024).decode(errors="replace").strip()
    if returncode != 0:
        target.unlink(missing_ok=True)
        raise RuntimeError(f"qemu-img convert failed: {stderr}")


def virtual_size(path: Path) -> int:
    """The disk size of a qcow2 file the service wrote itself."""
    result = subprocess.run(
        ["qemu-img", "info", "-f", "qcow2", "--output=json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(result.stdout)["virtual-size"])
