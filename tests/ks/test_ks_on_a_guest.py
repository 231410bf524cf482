"""The README's script, on a real guest: take a snapshot before a risky change, undo it."""

import json
import re
import subprocess

import pytest

from snapshots.models import Snapshot
from tests import guest
from tests.conftest import ROOT
from vms.models import VM

README = ROOT / "README.md"
# The change that goes wrong: it writes a file in the guest, waits until the guest says it has
# (the marker is computed by the guest's shell, so the typed line never matches), then fails.
UPGRADE = """#!/bin/sh
console="$KS_URL/api/vms/VM_ID/console/"
auth="Authorization: Bearer $KS_TOKEN"
curl -sf -X POST -H "$auth" -H "Content-Type: application/json" \\
  -d '{"line": "echo upgraded > /root/upgraded; sync; echo written-$((6*7))"}' "$console" >/dev/null
for _ in $(seq 120); do
  if curl -sf -H "$auth" "$console" | grep -q written-42; then echo written-42; exit 1; fi
  sleep 0.5
done
exit 1
"""

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


def test_a_snapshot_taken_before_a_change_undoes_it_and_a_refusal_exits_4(
    ks, worker, image, alice, tmp_path
):
    """One guest for all of it (boots are slow): the README's script as it stands there, the
    snapshot downloaded as a qcow2 file, and a refusal."""
    created = ks("vm", "create", "web", "--image", image.slug, timeout=300)
    assert created.returncode == 0, created.stderr + worker.output()[-3000:]
    assert created.stdout.splitlines()[1].split()[1:3] == ["web", "running"]
    vm = VM.objects.select_related("host").get(owner=alice, name="web")
    guest.wait_for_boot(vm)

    # The README's script, as it stands there, with `ks` on the PATH and a risky change that
    # writes into the guest (through the API's console), waits until the guest has written, and
    # fails.
    script = re.search(r"```sh\n(set -e\nsnapshot=.*?)```", README.read_text(), re.S).group(1)
    upgrade = tmp_path / "upgrade.sh"
    upgrade.write_text(UPGRADE.replace("VM_ID", str(vm.pk)))
    upgrade.chmod(0o755)
    ran = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env={**ks.env, "PATH": f"{ROOT / 'bin'}:{ks.env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert ran.returncode == 1, ran.stdout + ran.stderr  # the upgrade failed, so does the script
    assert "written-42" in ran.stdout  # the change reached the guest before the restore
    [taken] = Snapshot.objects.filter(source_vm=vm, name="before upgrade")
    guest.wait_for_boot(vm, boots=2)
    assert guest.run(vm, "test -e /root/upgraded || echo gone") == "gone"

    exported = ks("snapshot", "export", str(taken.pk), "-o", str(tmp_path / "web.qcow2"))
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
