"""A Debian image build never reaches outside its own folder, however it ends.

mmdebstrap's root mode bind-mounts the machine's /dev/shm, /proc and /sys into the folder it
fills. A build killed before it could undo those mounts once left them behind, and removing the
folder afterwards emptied the machine's /dev/shm (PostgreSQL's shared memory with it)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import wait_for
from vms import image_debian


@pytest.fixture
def cache_dir():
    folder = settings.STORAGE_DIR / "tests" / f"image-cache-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    image_debian.remove_tree(folder)


@pytest.fixture
def canary():
    """A file of the machine's own in /dev/shm, which no build may touch."""
    path = Path("/dev/shm") / f"ks-canary-{uuid.uuid4().hex[:8]}"
    path.write_text("still here")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep").write_text("still here")
    return folder


def age(folder: Path, seconds: float = 3600) -> None:
    then = time.time() - seconds
    os.utime(folder, (then, then))


def session_mounts(session: int, needle: str) -> bool:
    """Whether a process of `session` sees a mount whose point contains `needle`."""
    for pid in in_session(session):
        try:
            if needle in Path(f"/proc/{pid}/mountinfo").read_text():
                return True
        except OSError:
            continue
    return False


def in_session(session: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == session:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap's root mode needs root")
def test_a_build_killed_while_packages_install_leaves_no_mount_of_the_machines_behind(
    cache_dir, canary
):
    build = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from pathlib import Path; "
            "from vms import image_debian; "
            f"image_debian.build_cached(Path({str(cache_dir)!r}))",
        ],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "koding_snapshots.settings"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # mmdebstrap has bound the machine's /dev/shm into the folder: packages are installing.
        wait_for(
            lambda: session_mounts(build.pid, f"{cache_dir}/") or build.poll() is not None,
            timeout=300,
            interval=0.2,
            what="the build to mount /dev/shm into its folder",
        )
        assert build.poll() is None, "the build ended before it mounted anything"
    finally:
        os.killpg(build.pid, signal.SIGKILL)  # no chance to clean up
        build.wait()
    wait_for(lambda: not in_session(build.pid), timeout=10, what="its processes to end")

    assert image_debian.mounts_under(cache_dir) == []
    [left] = cache_dir.glob(".building-*")
    age(left)
    assert image_debian.sweep_stale_builds(cache_dir) == [left]
    assert not left.exists()
    assert canary.read_text() == "still here"


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_a_dead_builds_folder_is_removed_without_emptying_a_mount_left_inside_it(
    cache_dir, outside
):
    left = cache_dir / ".building-dead"
    point = left / "out" / "root" / "dev" / "shm"
    point.mkdir(parents=True)
    subprocess.run(["mount", "--bind", outside, point], check=True)
    try:
        age(left)
        assert image_debian.sweep_stale_builds(cache_dir) == [left]
    finally:
        subprocess.run(["umount", "--lazy", point], capture_output=True)

    assert not left.exists()
    assert (outside / "keep").read_text() == "still here"


def test_a_build_under_way_is_never_taken_for_a_dead_one(cache_dir):
    with image_debian.building_folder(cache_dir) as folder:
        (folder / "root").mkdir()
        age(folder)
        assert image_debian.sweep_stale_builds(cache_dir) == []
        assert (folder / "root").is_dir()
    assert not folder.exists()  # removed by the build itself when it ends


def test_a_folder_just_made_is_left_to_its_build(cache_dir):
    young = cache_dir / ".building-young"
    young.mkdir()  # made, not yet locked by its build

    assert image_debian.sweep_stale_builds(cache_dir) == []
    assert young.is_dir()
