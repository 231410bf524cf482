"""What the fake promises where libvirt's test driver cannot say what libvirt does: it keeps no
qcow2 files and runs no QEMU, so it has no disk snapshots, saved memory, block jobs, ACPI power
button, volume streams (upload, transfer), network filters or DHCP leases.

These run on the fake only. The real adapter does each of them in the tests that boot real
guests (`tests/snapshots/test_live_snapshots.py`, `tests/vms/test_layer_merge.py`,
`tests/vms/test_guest_network.py`, `tests/vms/test_several_hosts.py`,
`tests/transfers/test_imports.py`); the behaviours below are the ones those tests rely on.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.hypervisor.conftest import domain_spec, network_spec
from vms import hypervisor as hv
from vms.hypervisor.fake import FakeHypervisor

POOL = "pool"


@pytest.fixture
def fake():
    fake = FakeHypervisor("qemu:///system")
    fake.pool_ensure(POOL, "/pool")
    return fake


def running_guest(fake: FakeHypervisor, *, below: str | None = None) -> uuid.UUID:
    """A running guest on a new layer (on `below`, a volume of the pool, if given)."""
    domain_uuid = uuid.uuid4()
    backing = fake.volume_info(POOL, below).path if below else None
    disk = fake.volume_create(POOL, f"{domain_uuid}.qcow2", capacity=2**20, backing_path=backing)
    fake.domain_define(hv.domain_xml(domain_spec(domain_uuid, disk.path)))
    fake.domain_start(domain_uuid)
    return domain_uuid


# --- Disk snapshots and saved memory ------------------------------------------------------------


def test_a_disk_snapshot_switches_the_guest_onto_the_new_layer(fake):
    guest = running_guest(fake)
    old = fake.domain_disk_path(guest)
    new = fake.volume_create(POOL, "new.qcow2", capacity=2**20, backing_path=old)
    fake.domain_snapshot_disk(guest, new.path, quiesce=False)
    assert fake.domain_disk_path(guest) == new.path
    assert new.path in fake.domain_xml_of(guest, inactive=True)
    assert fake.domain_disk_chain(guest) == [new.path, old]


def test_a_disk_snapshot_needs_its_layer_made_first(fake):
    guest = running_guest(fake)
    with pytest.raises(hv.VolumeNotFound):
        fake.domain_snapshot_disk(guest, "/pool/never-made.qcow2", quiesce=False)


def test_quiescing_without_an_agent_is_refused(fake):
    guest = running_guest(fake)
    new = fake.volume_create(POOL, "new.qcow2", capacity=2**20)
    with pytest.raises(hv.HypervisorError, match="agent"):
        fake.domain_snapshot_disk(guest, new.path, quiesce=True)


def test_saved_memory_resumes_the_guest_on_a_new_layer(fake):
    guest = running_guest(fake)
    saved_disk = fake.domain_disk_path(guest)
    memory = fake.volume_create(POOL, "memory", capacity=0, fmt="raw")
    after = fake.volume_create(POOL, "after.qcow2", capacity=2**20, backing_path=saved_disk)
    fake.domain_snapshot_disk(guest, after.path, quiesce=False, memory_path=memory.path)
    assert fake.volume_info(POOL, "memory").allocation == 64 * 2**20  # the guest's memory
    fake.domain_destroy(guest)
    resumed = fake.volume_create(POOL, "resumed.qcow2", capacity=2**20, backing_path=saved_disk)
    fake.domain_restore_memory(
        guest, memory.path, saved_disk_path=saved_disk, disk_path=resumed.path
    )
    assert fake.domain_state(guest) == "running"
    assert fake.domain_disk_path(guest) == resumed.path


def test_memory_saved_from_another_guest_is_refused(fake):
    guest, other = running_guest(fake), running_guest(fake)
    saved_disk = fake.domain_disk_path(guest)
    memory = fake.volume_create(POOL, "memory", capacity=0, fmt="raw")
    after = fake.volume_create(POOL, "after.qcow2", capacity=2**20, backing_path=saved_disk)
    fake.domain_snapshot_disk(guest, after.path, quiesce=False, memory_path=memory.path)
    fake.domain_destroy(other)
    with pytest.raises(hv.MemoryMismatch, match="another VM"):
        fake.domain_restore_memory(
            other, memory.path, saved_disk_path=saved_disk, disk_path=after.path
        )


def test_memory_paired_with_another_disk_is_refused(fake):
    guest = running_guest(fake)
    memory = fake.volume_create(POOL, "memory", capacity=0, fmt="raw")
    after = fake.volume_create(POOL, "after.qcow2", capacity=2**20)
    fake.domain_snapshot_disk(guest, after.path, quiesce=False, memory_path=memory.path)
    fake.domain_destroy(guest)
    with pytest.raises(hv.MemoryMismatch, match="another disk"):
        fake.domain_restore_memory(
            guest, memory.path, saved_disk_path=after.path, disk_path=after.path
        )


# --- Block jobs and merging layers --------------------------------------------------------------


def test_a_block_pull_puts_the_top_layer_onto_the_base(fake):
    fake.volume_create(POOL, "base.qcow2", capacity=2**20)
    middle = fake.volume_create(
        POOL, "middle.qcow2", capacity=2**20, backing_path="/pool/base.qcow2"
    )
    guest = running_guest(fake, below="middle.qcow2")
    top = fake.domain_disk_path(guest)
    fake.domain_block_pull(guest, base_path="/pool/base.qcow2")
    assert fake.domain_disk_chain(guest) == [top, "/pool/base.qcow2"]
    assert middle.path not in fake.domain_disk_chain(guest)


def test_a_block_commit_takes_the_top_out_of_the_chain(fake):
    fake.volume_create(POOL, "base.qcow2", capacity=2**20)
    fake.volume_create(POOL, "middle.qcow2", capacity=2**20, backing_path="/pool/base.qcow2")
    guest = running_guest(fake, below="middle.qcow2")
    top = fake.domain_disk_path(guest)
    fake.domain_block_commit(guest, top_path="/pool/middle.qcow2", base_path="/pool/base.qcow2")
    assert fake.domain_disk_chain(guest) == [top, "/pool/base.qcow2"]


def test_block_jobs_need_a_running_guest(fake):
    guest = running_guest(fake)
    fake.domain_destroy(guest)
    with pytest.raises(hv.InvalidDomainState):
        fake.domain_block_pull(guest)


def test_a_layer_a_running_guest_has_open_is_not_rebased(fake):
    fake.volume_create(POOL, "base.qcow2", capacity=2**20)
    guest = running_guest(fake, below="base.qcow2")
    name = fake.domain_disk_path(guest).rsplit("/", 1)[1]
    with pytest.raises(hv.HypervisorError, match="lock"):
        fake.volume_rebase(POOL, name, None)


def test_a_layer_no_guest_has_open_is_rebased(fake):
    fake.volume_create(POOL, "base.qcow2", capacity=2**20)
    fake.volume_create(POOL, "top.qcow2", capacity=2**20, backing_path="/pool/base.qcow2")
    assert fake.volume_rebase(POOL, "top.qcow2", None).backing_path is None


def test_a_layer_on_another_machine_is_not_rebased(fake):
    remote = FakeHypervisor("qemu+ssh://root@far/system")
    remote.pool_ensure(POOL, "/pool")
    remote.volume_create(POOL, "top.qcow2", capacity=2**20)
    with pytest.raises(hv.HypervisorError, match="while their VM runs"):
        remote.volume_rebase(POOL, "top.qcow2", None)


# --- Power ------------------------------------------------------------------------------------


def test_the_power_button_stops_a_guest_that_obeys(fake):
    guest = running_guest(fake)
    assert fake.domain_shutdown(guest, timeout=1) is True
    assert fake.domain_state(guest) == "shutoff"


def test_the_power_button_leaves_a_guest_that_ignores_it_running(fake):
    guest = running_guest(fake)
    fake.obeys_power_button = False
    assert fake.domain_shutdown(guest, timeout=1) is False
    assert fake.domain_state(guest) == "running"


# --- Streams: uploads, transfers, consoles ------------------------------------------------------


def test_an_uploaded_qcow2_shows_its_virtual_size_and_backing_file(fake, tmp_path):
    image = tmp_path / "disk.qcow2"
    backing = ["-u", "-F", "qcow2", "-b", "/elsewhere/base.qcow2"]
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", *backing, str(image), "1G"], check=True
    )
    info = fake.volume_upload(POOL, "disk.qcow2", str(image))
    assert (info.capacity, info.backing_path) == (2**30, "/elsewhere/base.qcow2")


def test_an_uploaded_raw_file_is_as_large_as_the_file(fake, tmp_path):
    image = tmp_path / "kernel"
    image.write_bytes(b"k" * 1000)
    info = fake.volume_upload(POOL, "kernel", str(image))
    assert (info.capacity, info.backing_path) == (1000, None)


def test_a_transfer_copies_the_volume_as_it_is_to_the_other_host(fake):
    other = FakeHypervisor("qemu+tcp://127.0.0.1:16510/session")
    other.pool_ensure(POOL, "/pool")
    fake.volume_create(POOL, "layer.qcow2", capacity=2**20, backing_path="/pool/base.qcow2")
    info = fake.volume_transfer(POOL, other, POOL, "layer.qcow2")
    assert info == other.volume_info(POOL, "layer.qcow2")
    assert info.backing_path == "/pool/base.qcow2"
    assert "layer.qcow2" in fake.volume_names(POOL)


def test_a_console_read_gives_the_logs_tail_and_whole_size(fake):
    fake.console_log(POOL, "1.log", b"booting\nready\n")
    assert fake.console_read(POOL, "1.log", 6) == (b"ready\n", 14)


def test_what_is_typed_into_a_running_guests_console_reaches_it(fake):
    guest = running_guest(fake)
    fake.console_send(guest, b"ls\n")
    assert fake.console_input[guest] == b"ls\n"


# --- The guests' network ----------------------------------------------------------------------


def test_ensuring_the_network_makes_it_and_its_guests_filter(fake):
    spec = network_spec()
    fake.network_ensure(spec, host_addresses=["192.0.2.1"])
    assert fake.network_active(spec.name)
    assert 'dstipaddr="192.0.2.1"' in fake.filters[spec.filter_name]


def test_ensuring_the_network_again_keeps_its_reservations(fake):
    spec = network_spec()
    fake.network_ensure(spec, host_addresses=[])
    fake.network_reserve(spec.name, mac="52:54:00:aa:00:01", address="10.213.7.11")
    fake.network_ensure(spec, host_addresses=[])
    assert fake.network_reservations(spec.name) == {"52:54:00:aa:00:01": "10.213.7.11"}


def test_leases_name_each_address_with_its_mac(fake):
    spec = network_spec()
    fake.network_ensure(spec, host_addresses=[])
    fake.network_lease(spec.name, mac="52:54:00:AA:00:01", address="10.213.7.11")
    assert fake.network_leases(spec.name) == {"10.213.7.11": "52:54:00:aa:00:01"}


# --- What a test sees -------------------------------------------------------------------------


def test_every_call_is_counted(fake):
    fake.calls.clear()
    fake.version()
    fake.pool_exists(POOL)
    assert fake.calls == ["version", "pool_exists"]


def test_a_fake_that_does_not_answer_fails_every_call(fake):
    fake.reachable = False
    with pytest.raises(hv.HypervisorUnavailable):
        fake.volume_names(POOL)
