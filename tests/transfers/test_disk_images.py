"""The disk-image reader on its own (no database, no libvirt): every `qemu-img` run on a foreign
file is bounded by its `Limits`."""

import re

import pytest

from tests.transfers.conftest import compressed_qcow2
from transfers import disk_images
from transfers.disk_images import Limits, RefusedImage, TookTooLong

MiB = 1024**2
GENEROUS = Limits(memory=disk_images.CONVERT_MEMORY, file_size=0, seconds=60)


def test_measure_says_what_a_compressed_image_expands_to(tmp_path):
    bomb = compressed_qcow2(tmp_path / "bomb.qcow2", "64M")

    required = disk_images.measure(bomb, "qcow2", limits=GENEROUS)

    assert bomb.stat().st_size < MiB
    assert 64 * MiB < required < 65 * MiB


def test_a_rewrite_that_writes_past_its_file_size_limit_is_stopped(tmp_path):
    bomb = compressed_qcow2(tmp_path / "bomb.qcow2", "64M")
    target = tmp_path / "rewritten.qcow2"

    with pytest.raises(RefusedImage, match=re.escape("grew past the 4 MiB measured for it")):
        disk_images.rewrite(
            bomb,
            "qcow2",
            target,
            limits=Limits(memory=GENEROUS.memory, file_size=4 * MiB, seconds=60),
        )

    assert not target.exists()


def test_a_run_past_its_wall_clock_limit_is_killed(tmp_path):
    with pytest.raises(TookTooLong, match="longer than the 1 s allowed"):
        disk_images.limited(["sleep", "30"], Limits(memory=GENEROUS.memory, file_size=0, seconds=1))


def test_a_reader_may_write_no_file(tmp_path):
    # `dd` stands for a reader that tries to write a file: under a reader's limits it cannot.
    target = tmp_path / "written"

    result = disk_images.limited(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1024", "count=1"], GENEROUS.for_reading()
    )

    assert result.returncode != 0
    assert target.stat().st_size == 0


def test_qemu_imgs_progress_redraws_are_read_as_percentages():
    output = b"    (0.00/100%)\r    (1.06/100%)\r    (100.00/100%)\r\n"

    assert disk_images.percents_in(output) == [0.0, 1.06, 100.0]
    assert disk_images.percents_in(b"(250/100%) (12/100) nothing") == [100.0]


def test_an_export_says_how_far_it_is_at_each_whole_percent(tmp_path):
    disk = compressed_qcow2(tmp_path / "disk.qcow2", "64M")
    heard = []

    disk_images.export_chain([str(disk)], tmp_path / "export.qcow2", on_progress=heard.append)

    assert heard == sorted(set(heard))  # each once, never backwards
    assert len(heard) > 10
    assert heard[-1] == 1.0
    assert (tmp_path / "export.qcow2").read_bytes()[:4] == b"QFI\xfb"


def test_an_export_whose_report_fails_stops_and_leaves_no_file(tmp_path):
    disk = compressed_qcow2(tmp_path / "disk.qcow2", "64M")

    def fail(done):
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        disk_images.export_chain([str(disk)], tmp_path / "export.qcow2", on_progress=fail)

    assert not (tmp_path / "export.qcow2").exists()
