"""Two installations of the service on one libvirtd, with the same settings but their own
databases, keep to their own: each one's reconciler, past its grace period, removes its own
strays and leaves everything of the other where it is."""

import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta

import pytest
from django.test.utils import override_settings

from tests.conftest import ROOT, child_env
from vms import hypervisor
from vms.models import VM, VMState

pytestmark = [pytest.mark.libvirt]

SECOND_INSTALLATION = textwrap.dedent(
    """
    import json, os, sys
    from datetime import timedelta
    from pathlib import Path

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koding_snapshots.settings")
    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django_q.conf import Conf

    from core.installation import installation_id
    from vms.image_build import GuestImageFiles
    from vms.image_upload import image_register
    from vms.models import VM
    from vms.reconciler import reconcile
    from vms.services import host_ensure_default, vm_create

    step, given = sys.argv[1], json.loads(sys.argv[2])
    Conf.SYNC = True
    if step == "start":
        call_command("migrate", verbosity=0)
        host = host_ensure_default()
        paths = {k: Path(given[k]) for k in ("kernel", "initrd", "root_disk")}
        files = GuestImageFiles(**{**given, **paths})
        image = image_register(host=host, slug="busybox", name="Busybox", description="",
                               files=files)
        owner = get_user_model().objects.create_user("someone")
        operation = vm_create(owner=owner, name="theirs", image=image)
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
        host.hypervisor.volume_create(host.pool_name, "stray.qcow2", capacity=2**20)
        vm = VM.objects.get()
        print(json.dumps({
            "installation": str(installation_id()),
            "pool": host.pool_name,
            "domain": str(vm.domain_uuid),
            "address": vm.ip_address,
        }))
    else:
        for _ in range(2):  # the first pass sights strays, the second removes them
            print(reconcile(grace=timedelta(0)).text())
    """
)


def second_installation(step: str, given: dict, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SECOND_INSTALLATION, step, json.dumps(given)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def shared_storage(test_pool):
    """A STORAGE_DIR both installations use (where QEMU may read, like the test pool's), with
    STORAGE_POOL unset in both (the defaults), and their pools removed afterwards."""
    from django.conf import settings

    made = []
    folder = settings.STORAGE_DIR / "tests" / f"installations-{uuid.uuid4().hex[:8]}"
    yield folder, made
    local = hypervisor.Hypervisor(test_pool["libvirt_uri"])
    for record in local.domains():
        if record.metadata.get("pool") in made:
            local.domain_undefine(record.uuid)
    for pool in made:
        local.pool_remove(pool)
        local.pool_remove(f"{pool}-console")
    shutil.rmtree(folder, ignore_errors=True)


def test_two_installations_on_one_libvirtd_keep_to_their_own_through_a_reconcile(
    transactional_db, shared_storage, guest_files, alice, tmp_path
):
    from core.installation import installation_id
    from tests.conftest import tasks_inline
    from vms.image_upload import image_register
    from vms.reconciler import reconcile
    from vms.services import host_ensure_default, vm_create

    storage, made = shared_storage
    theirs_env = child_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'theirs.sqlite3'}",
        DATA_DIR=str(tmp_path / "theirs"),
        STORAGE_DIR=str(storage),
        QUEUE_NAME=f"ks-test-theirs-{uuid.uuid4().hex[:8]}",
    )
    theirs_env.pop("STORAGE_POOL", None)
    files = {
        "kernel": str(guest_files.kernel),
        "initrd": str(guest_files.initrd),
        "root_disk": str(guest_files.root_disk),
        "kernel_version": guest_files.kernel_version,
        "virtual_size": guest_files.virtual_size,
    }
    with override_settings(STORAGE_DIR=storage, STORAGE_POOL=""):
        ours = host_ensure_default()
        made.append(ours.pool_name)
        image = image_register(
            host=ours, slug="busybox", name="Busybox", description="", files=guest_files
        )
        with tasks_inline():
            operation = vm_create(owner=alice, name="ours", image=image)
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
        mine = VM.objects.get(owner=alice)
        started = second_installation("start", files, theirs_env)
        other = json.loads(started.strip().splitlines()[-1])
        made.append(other["pool"])
        assert other["installation"] != str(installation_id())
        assert other["pool"] != ours.pool_name  # the same settings, each its own pool
        assert other["address"] != mine.ip_address  # and its own address on the shared network
        ours.hypervisor.volume_create(ours.pool_name, "stray.qcow2", capacity=2**20)
        volumes_before = {
            pool: set(ours.hypervisor.volume_names(pool)) - {"stray.qcow2"}
            for pool in (ours.pool_name, other["pool"])
        }

        for _ in range(2):  # the first pass sights strays, the second removes them
            reconcile(grace=timedelta(0))
        second_installation("reconcile", {}, theirs_env)

        volumes_after = {pool: set(ours.hypervisor.volume_names(pool)) for pool in volumes_before}
    assert volumes_after == volumes_before  # each removed its own stray and nothing else
    running = {str(record.uuid) for record in ours.hypervisor.domains() if record.active}
    assert {str(mine.domain_uuid), other["domain"]} <= running
    mine.refresh_from_db()
    assert mine.state == VMState.RUNNING
