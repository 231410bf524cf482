"""An installation touches only what carries its identity on a host: its domains' metadata and
its pools' claims (rules, on in-memory hosts)."""

import uuid
from datetime import timedelta

import pytest

from core.installation import installation_id, installation_short
from core.models import Installation
from vms import hypervisor, ownership
from vms.models import Host
from vms.reconciler import reconcile
from vms.selectors import host_from_settings
from vms.services import host_ensure_default

URI = "qemu:///system"
NO_GRACE = timedelta(0)


@pytest.fixture
def local(fake_hosts, settings, tmp_path):
    settings.LIBVIRT_URI = URI
    settings.STORAGE_DIR = tmp_path
    settings.STORAGE_POOL = ""
    settings.GUEST_NETWORK = ""
    return fake_hosts[URI]


def domain(metadata: dict) -> str:
    return hypervisor.domain_xml(
        hypervisor.DomainSpec(
            uuid=uuid.uuid4(),
            domain_type="qemu",
            vcpus=1,
            memory_mib=64,
            disk_path="/nowhere.qcow2",
            mac="52:54:00:00:00:01",
            kernel_path="/nowhere.vmlinuz",
            initrd_path="/nowhere.initrd",
            cmdline="",
            console_log="/nowhere.log",
            metadata=metadata,
        )
    )


def test_the_identity_is_made_once_and_kept(db):
    assert installation_id() == installation_id() == Installation.objects.get().uuid


def test_the_identity_survives_its_row_being_removed_in_the_same_process(db):
    before = installation_id()
    Installation.objects.all().delete()
    assert installation_id() == before


def test_the_default_pool_and_console_folder_are_named_for_the_installation(db, local):
    host = host_from_settings()
    assert host.pool_name == f"koding-snapshots-{installation_short()}"
    assert host.console_dir.endswith(f"/koding-snapshots-{installation_short()}-console")


def test_a_named_pool_is_used_as_named(db, local, settings):
    settings.STORAGE_POOL = "my-pool"
    assert host_from_settings().pool_name == "my-pool"


def test_a_host_registered_before_pools_were_named_keeps_its_pool(db, local, tmp_path):
    Host.objects.create(
        name="local",
        libvirt_uri=URI,
        pool_name="koding-snapshots",
        pool_path=str(tmp_path / "koding-snapshots"),
        console_dir=str(tmp_path / "console"),
    )
    host = host_ensure_default()
    assert (host.pool_name, host.console_dir) == ("koding-snapshots", str(tmp_path / "console"))


def test_preparing_a_host_claims_its_pool(db, local):
    host = host_ensure_default()
    assert ownership.pool_claim_name() in local.volume_names(host.pool_name)


def test_a_pool_another_installation_claimed_is_refused_with_a_sentence(db, local, settings):
    settings.STORAGE_POOL = "shared"
    local.pool_ensure("shared", "/pools/shared")
    local.volume_create("shared", ownership.pool_claim_name(uuid.uuid4()), capacity=0, fmt="raw")
    with pytest.raises(hypervisor.HypervisorError, match="belongs to another installation"):
        host_ensure_default()
    assert ownership.pool_claim_name() not in local.volume_names("shared")


def test_the_reconciler_leaves_a_pool_another_installation_claimed_alone(db, local):
    host = host_ensure_default()
    local.volume_create(host.pool_name, ownership.pool_claim_name(uuid.uuid4()), capacity=0)
    local.volume_create(host.pool_name, "theirs.qcow2", capacity=2**20)
    for _ in range(2):
        report = reconcile(grace=NO_GRACE)
    assert "theirs.qcow2" in local.volume_names(host.pool_name)
    assert any("belongs to another installation" in line for line in report.found)


def test_the_reconciler_keeps_its_own_claim(db, local):
    host = host_ensure_default()
    for _ in range(2):
        reconcile(grace=NO_GRACE)
    assert ownership.pool_claim_name() in local.volume_names(host.pool_name)


def test_the_reconciler_removes_an_orphan_domain_of_its_own(db, local):
    host = host_ensure_default()
    local.domain_define(domain(ownership.domain_metadata(vm="gone", pool=host.pool_name)))
    for _ in range(2):
        reconcile(grace=NO_GRACE)
    assert local.domains() == []


def test_the_reconciler_never_removes_another_installations_domain_even_in_its_pool(db, local):
    host = host_ensure_default()
    theirs = {"vm": "theirs", "pool": host.pool_name, "installation": str(uuid.uuid4())}
    local.domain_define(domain(theirs))
    for _ in range(2):
        report = reconcile(grace=NO_GRACE)
    assert [record.metadata for record in local.domains()] == [theirs]
    assert not any("Domain" in line for line in report.found)


def test_the_reconciler_never_removes_a_domain_that_carries_no_installation(db, local):
    host = host_ensure_default()
    local.domain_define(domain({"vm": "from-before", "pool": host.pool_name}))
    for _ in range(2):
        reconcile(grace=NO_GRACE)
    assert len(local.domains()) == 1


def test_the_health_probe_reports_a_pool_another_installation_claimed(db, local):
    from vms.services import host_probe

    host = host_ensure_default()
    local.volume_create(host.pool_name, ownership.pool_claim_name(uuid.uuid4()), capacity=0)
    assert "belongs to another installation" in host_probe(host)
