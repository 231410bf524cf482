"""The README's script, on a real guest: take a snapshot before a risky change, undo it."""

import json
import subprocess

import pytest

from tests import guest
from vms.models import VM

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


def test_a_snapshot_taken_before_a_change_undoes_it_and_a_refusal_exits_4(
    ks, worker, image, alice, tmp_path
):
    """One guest for all of it (boots are slow): the README's script by hand, the snapshot
    downloaded as a qcow2 file, and a refusal."""
    created = ks("vm", "create", "web", "--image", image.slug, timeout=300)
    assert created.returncode == 0, created.stderr + worker.output()[-3000:]
    assert created.stdout.splitlines()[1].split()[1:3] == ["web", "running"]
    vm = VM.objects.select_related("host").get(owner=alice, name="web")
    guest.wait_for_boot(vm)

    taken = ks("--quiet", "snapshot", "take", "web", "before upgrade", timeout=300)
    assert taken.returncode == 0, taken.stderr
    guest.run(vm, "echo upgraded > /root/upgraded; sync; echo written")
    assert guest.run(vm, "cat /root/upgraded") == "upgraded"

    restored = ks("snapshot", "restore", taken.stdout.strip(), timeout=300)
    assert restored.returncode == 0, restored.stderr
    guest.wait_for_boot(vm, boots=2)
    assert guest.run(vm, "test -e /root/upgraded || echo gone") == "gone"

    exported = ks("snapshot", "export", taken.stdout.strip(), "-o", str(tmp_path / "web.qcow2"))
    assert exported.returncode == 0, exported.stderr
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(tmp_path / "web.qcow2")],
        capture_output=True,
        check=True,
    )
    assert json.loads(info.stdout)["format"] == "qcow2"

    stopped = ks("vm", "stop", "web", "--force", timeout=300)
    assert stopped.returncode == 0, stopped.stderr
    refused = ks("snapshot", "take", "web", "with memory", "--memory")
    assert refused.returncode == 4
    assert refused.stderr == (
        "ks: VM 'web' is stopped, so it has no memory to keep; take a snapshot without memory, "
        "or start the VM first.\n"
    )
