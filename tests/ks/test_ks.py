"""The command-line client against a live server: its output, its exit codes, what it sends."""

import json
import os
import pty
import subprocess
import sys
import uuid

import pytest

from operations.models import Operation, OperationState
from tests.conftest import ROOT
from tests.factories import domain_running, image_row, snapshot_row, vm_row
from tests.ks.conftest import Ks
from vms.models import VMOperationKind, VMState


@pytest.fixture
def web(alice, fake_hosts):
    """Alice's running VM "web"."""
    vm = vm_row(owner=alice, image=image_row(), name="web")
    domain_running(fake_hosts[vm.host.libvirt_uri], vm)
    return vm


@pytest.fixture
def box(alice, web):
    """Alice's stopped VM "box"."""
    return vm_row(owner=alice, image=web.image, name="box", state=VMState.STOPPED)


def finished(alice, vm, state, error=""):
    return Operation.objects.create(
        kind=VMOperationKind.CREATE,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        state=state,
        progress=100 if state == OperationState.SUCCEEDED else 40,
        error=error,
    )


def test_vm_list_prints_a_table(ks, web):
    result = ks("vm", "list")

    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATE"]
    assert row.split()[:3] == [str(web.pk), "web", "running"]


def test_json_prints_what_the_api_answers(ks, web):
    result = ks("vm", "list", "--json")

    assert result.returncode == 0, result.stderr
    [vm] = json.loads(result.stdout)
    assert (vm["id"], vm["name"], vm["state"]) == (str(web.pk), "web", "running")


def test_image_list_prints_the_images_offered(ks, web):
    result = ks("image", "list")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["busybox", "Busybox"]


def test_a_snapshot_list_is_filtered_by_a_vm_named_by_name(ks, web, box):
    snapshot_row(web, "clean")
    snapshot_row(box, "other")

    result = ks("snapshot", "list", "--vm", "web", "--quiet")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(web.snapshots.get().pk)]


def test_an_unknown_vm_exits_3(ks, web):
    result = ks("vm", "start", "nope")

    assert result.returncode == 3
    assert result.stderr == "ks: There is no VM 'nope' among yours; `ks vm list` lists them.\n"


def test_a_refused_request_exits_4_with_the_servers_sentence(ks, web):
    result = ks("vm", "start", "web")

    assert result.returncode == 4
    assert "running" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_image_exits_4_naming_the_list_of_images(ks, web):
    result = ks("vm", "create", "db", "--image", "nope")

    assert result.returncode == 4
    assert "GET /api/images/" in result.stderr


def test_a_usage_error_exits_2(ks, web):
    result = ks("vm", "create", "db")

    assert result.returncode == 2
    assert "--image" in result.stderr


def test_an_ambiguous_snapshot_name_exits_2(ks, web):
    snapshot_row(web, "daily")
    snapshot_row(web, "daily")

    result = ks("snapshot", "restore", "daily")

    assert result.returncode == 2
    assert "2 snapshots are named 'daily'; name one by its id" in result.stderr


def test_without_configuration_it_exits_2_saying_how_to_configure(ks_env):
    del ks_env["KS_URL"]

    result = Ks(ks_env)("vm", "list")

    assert result.returncode == 2
    assert "set KS_URL and KS_TOKEN" in result.stderr


def test_the_config_file_is_read_and_the_environment_wins(ks_env, tmp_path, web):
    config = tmp_path / ".config" / "ks" / "config"
    config.parent.mkdir(parents=True)
    config.write_text(f"[ks]\nurl = {ks_env.pop('KS_URL')}\ntoken = not-a-token\n")

    result = Ks(ks_env)("vm", "list", "--quiet")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(web.pk)]


def test_a_bad_token_exits_4(ks_env, web):
    ks_env["KS_TOKEN"] = "not-a-token"

    result = Ks(ks_env)("vm", "list")

    assert result.returncode == 4
    assert "Traceback" not in result.stderr


def test_an_unreachable_server_exits_5(ks_env):
    ks_env["KS_URL"] = "http://127.0.0.1:9"

    result = Ks(ks_env)("image", "list")

    assert result.returncode == 5
    assert result.stderr.startswith("ks: Cannot reach the server at http://127.0.0.1:9")


def test_every_post_sends_a_fresh_idempotency_key(ks, box):
    first = ks("vm", "start", "box", "--no-wait", "--quiet")
    second = ks("vm", "start", "box", "--no-wait", "--quiet")

    assert first.returncode == 0, first.stderr
    operation = Operation.objects.get(pk=first.stdout.strip())
    assert uuid.UUID(operation.idempotency_key).version == 4
    assert second.returncode == 4  # a new key: a second start, refused as the VM is busy


def test_a_retried_command_with_the_same_key_gets_the_same_operation(ks, box):
    command = ("--idempotency-key", "start-box-1", "vm", "start", "box", "--no-wait", "-q")

    first, second = ks(*command), ks(*command)

    assert first.returncode == second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    assert Operation.objects.get().idempotency_key == "start-box-1"


def test_no_wait_prints_the_operation_at_once(ks, box):
    result = ks("vm", "start", "box", "--no-wait")

    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "STATE"]
    assert row.split()[1:3] == ["vm.start", "queued"]


def test_op_wait_prints_plain_progress_lines_when_stderr_is_not_a_terminal(ks, alice, web):
    operation = finished(alice, web, OperationState.SUCCEEDED)

    result = ks("op", "wait", str(operation.pk))

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["Create VM: succeeded 100%"]
    assert str(operation.pk) in result.stdout


def test_op_wait_exits_1_with_the_error_of_a_failed_operation(ks, alice, web):
    operation = finished(alice, web, OperationState.FAILED, error="The host's disk is full.")

    result = ks("op", "wait", str(operation.pk))

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "ks: The host's disk is full."


def test_op_wait_of_an_unknown_operation_exits_3(ks, web):
    result = ks("op", "wait", "00000000-0000-0000-0000-000000000000")

    assert result.returncode == 3


def test_op_wait_draws_a_progress_bar_when_stderr_is_a_terminal(ks_env, alice, web):
    operation = finished(alice, web, OperationState.SUCCEEDED)
    terminal, stderr = pty.openpty()

    result = subprocess.run(
        [sys.executable, "-m", "ks", "op", "wait", str(operation.pk)],
        cwd=ROOT,
        env=ks_env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        timeout=60,
    )
    os.close(stderr)
    drawn = os.read(terminal, 4096).decode()
    os.close(terminal)

    assert result.returncode == 0
    assert drawn.startswith("\r[####################] Create VM: succeeded 100%")


def test_a_disk_image_is_uploaded_for_import(ks, web, tmp_path):
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)

    result = ks("snapshot", "import", str(disk), "imported", "--no-wait", "--quiet")

    assert result.returncode == 0, result.stderr
    operation = Operation.objects.get(pk=result.stdout.strip())
    assert operation.kind == "transfer.import"


def test_a_file_that_is_not_what_it_says_is_refused_with_4_and_the_reason(ks, web, tmp_path):
    garbage = tmp_path / "disk.qcow2"
    garbage.write_bytes(b"not a disk image" * 100)

    result = ks("snapshot", "import", str(garbage), "imported", "--format", "qcow2")

    assert result.returncode == 4
    assert "qcow2" in result.stderr
    assert "Traceback" not in result.stderr


def test_vm_fork_asks_for_the_new_vms_and_prints_the_operation(ks, web):
    web.image.live_identity = True
    web.image.save(update_fields=["live_identity"])

    result = ks("vm", "fork", "web", "--count", "2", "--no-wait", "--json")

    assert result.returncode == 0, result.stderr
    operation = Operation.objects.get(pk=json.loads(result.stdout)["id"])
    assert operation.kind == "snapshot.fork"
    assert len(operation.params["children"]) == 2


def test_a_fork_of_eleven_exits_4_with_the_servers_sentence(ks, web):
    result = ks("vm", "fork", "web", "--count", "11", "--no-wait")

    assert result.returncode == 4
    assert "10" in result.stderr
