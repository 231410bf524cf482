"""What every hypervisor adapter promises, checked against the fake and against libvirt's test
driver alike (the `hypervisor` fixture runs each test on both), so the fake cannot drift from
libvirt. What the test driver cannot do is in `test_fake_only.py`."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.hypervisor.conftest import domain_spec
from vms import hypervisor as hv
from vms.hypervisor.fake import FakeHypervisor

# --- The host ---------------------------------------------------------------------------------


def test_the_version_is_three_numbers(hypervisor):
    assert re.fullmatch(r"\d+\.\d+\.\d+", hypervisor.version())


def test_the_host_reports_its_memory_and_cpus(hypervisor):
    found = hypervisor.host_resources()
    assert found["memory_mib"] > 0 and found["cpus"] > 0


@pytest.fixture(params=["fake", "libvirt"])
def gone(request):
    """A host that does not answer (nothing listens on port 1 of this machine)."""
    uri = "qemu+tcp://127.0.0.1:1/system"
    if request.param == "fake":
        fake = FakeHypervisor(uri)
        fake.reachable = False
        return fake
    return hv.Hypervisor(uri)


def test_a_host_that_does_not_answer_is_unavailable_and_named(gone):
    with pytest.raises(hv.HypervisorUnavailable, match=re.escape(gone.uri)):
        gone.version()


# --- Pools and volumes ------------------------------------------------------------------------


def test_an_ensured_pool_exists(hypervisor, pool):
    assert hypervisor.pool_exists(pool)


def test_a_pool_never_made_does_not_exist(hypervisor):
    assert not hypervisor.pool_exists("contract-never-made")


def test_ensuring_a_pool_again_keeps_its_volumes(hypervisor, pool):
    hypervisor.volume_create(pool, "kept.qcow2", capacity=2**20)
    hypervisor.pool_ensure(pool, f"/nonexistent/{pool}")
    assert hypervisor.volume_names(pool) == ["kept.qcow2"]


def test_a_removed_pool_is_gone_and_removing_it_again_is_fine(hypervisor):
    hypervisor.pool_ensure("contract-removed", "/nonexistent/contract-removed")
    hypervisor.volume_create("contract-removed", "inside.qcow2", capacity=2**20)
    hypervisor.pool_remove("contract-removed")
    hypervisor.pool_remove("contract-removed")
    assert not hypervisor.pool_exists("contract-removed")


def test_a_pool_has_a_capacity(hypervisor, pool):
    assert hypervisor.pool_capacity(pool) > 0


def test_a_missing_pool_is_pool_not_found(hypervisor):
    with pytest.raises(hv.PoolNotFound, match="contract-never-made"):
        hypervisor.volume_names("contract-never-made")


def test_a_new_volume_is_in_the_pool_folder_with_its_capacity(hypervisor, pool):
    info = hypervisor.volume_create(pool, "new.qcow2", capacity=3 * 2**20)
    assert info.name == "new.qcow2"
    assert info.path == f"/nonexistent/{pool}/new.qcow2"
    assert info.capacity == 3 * 2**20
    assert info.backing_path is None
    assert hypervisor.volume_info(pool, "new.qcow2") == info


def test_a_layer_names_its_backing_file(hypervisor, pool):
    base = hypervisor.volume_create(pool, "base.qcow2", capacity=2**20)
    hypervisor.volume_create(pool, "top.qcow2", capacity=2**20, backing_path=base.path)
    assert hypervisor.volume_info(pool, "top.qcow2").backing_path == base.path


def test_a_volume_name_in_use_is_refused(hypervisor, pool):
    hypervisor.volume_create(pool, "taken.qcow2", capacity=2**20)
    with pytest.raises(hv.HypervisorError):
        hypervisor.volume_create(pool, "taken.qcow2", capacity=2**20)


def test_volume_names_come_sorted(hypervisor, pool):
    for name in ("b.qcow2", "c.qcow2", "a.qcow2"):
        hypervisor.volume_create(pool, name, capacity=2**20)
    assert hypervisor.volume_names(pool) == ["a.qcow2", "b.qcow2", "c.qcow2"]


def test_a_missing_volume_is_volume_not_found(hypervisor, pool):
    with pytest.raises(hv.VolumeNotFound, match=r"missing\.qcow2"):
        hypervisor.volume_info(pool, "missing.qcow2")


def test_deleting_a_volume_says_whether_it_was_there(hypervisor, pool):
    hypervisor.volume_create(pool, "doomed.qcow2", capacity=2**20)
    assert hypervisor.volume_delete(pool, "doomed.qcow2") is True
    assert hypervisor.volume_delete(pool, "doomed.qcow2") is False
    assert hypervisor.volume_names(pool) == []


def test_a_copy_stands_alone_and_is_at_least_as_large(hypervisor, pool):
    base = hypervisor.volume_create(pool, "base.qcow2", capacity=2**20)
    hypervisor.volume_create(pool, "top.qcow2", capacity=2**21, backing_path=base.path)
    copy = hypervisor.volume_copy(pool, "top.qcow2", "copy.qcow2", capacity=2**20)
    assert copy.backing_path is None
    assert copy.capacity == 2**21
    assert hypervisor.volume_copy(pool, "top.qcow2", "big.qcow2", capacity=2**22).capacity == 2**22


def test_deleting_by_prefix_leaves_the_other_volumes(hypervisor, pool):
    for name in ("7.log", "7.log.0", "8.log"):
        hypervisor.volume_create(pool, name, capacity=2**20, fmt="raw")
    hypervisor.volumes_delete_prefixed(pool, "7.log")
    assert hypervisor.volume_names(pool) == ["8.log"]


def test_refreshing_a_pool_keeps_its_volumes(hypervisor, pool):
    hypervisor.volume_create(pool, "kept.qcow2", capacity=2**20)
    hypervisor.pool_refresh(pool)
    assert hypervisor.volume_names(pool) == ["kept.qcow2"]


def test_a_console_without_pool_or_log_reads_empty(hypervisor, pool):
    assert hypervisor.console_read("contract-never-made", "1.log", 100) == (b"", 0)
    assert hypervisor.console_read(pool, "1.log", 100) == (b"", 0)


# --- Domains ----------------------------------------------------------------------------------


def test_a_defined_domain_is_shut_off(hypervisor, define):
    assert hypervisor.domain_state(define()) == "shutoff"


def test_a_domain_never_defined_has_no_state(hypervisor):
    assert hypervisor.domain_state(uuid.uuid4()) is None


def test_starting_a_domain_runs_it_and_starting_it_again_is_fine(hypervisor, define):
    domain_uuid = define()
    hypervisor.domain_start(domain_uuid)
    hypervisor.domain_start(domain_uuid)
    assert hypervisor.domain_state(domain_uuid) == "running"


def test_starting_a_missing_domain_is_domain_not_found(hypervisor):
    with pytest.raises(hv.DomainNotFound):
        hypervisor.domain_start(uuid.uuid4())


def test_destroy_stops_a_running_domain(hypervisor, define):
    domain_uuid = define()
    hypervisor.domain_start(domain_uuid)
    hypervisor.domain_destroy(domain_uuid)
    assert hypervisor.domain_state(domain_uuid) == "shutoff"


def test_destroy_leaves_a_stopped_or_missing_domain_alone(hypervisor, define):
    domain_uuid = define()
    hypervisor.domain_destroy(domain_uuid)
    hypervisor.domain_destroy(uuid.uuid4())
    assert hypervisor.domain_state(domain_uuid) == "shutoff"


def test_undefine_says_whether_the_domain_was_defined(hypervisor, define):
    domain_uuid = define()
    hypervisor.domain_start(domain_uuid)
    assert hypervisor.domain_undefine(domain_uuid) is True
    assert hypervisor.domain_undefine(domain_uuid) is False
    assert hypervisor.domain_state(domain_uuid) is None


def test_domains_lists_only_this_services_domains_with_their_metadata(hypervisor, define, pool):
    domain_uuid = define(vm="42")
    hypervisor.domain_start(domain_uuid)
    ours = [r for r in hypervisor.domains() if r.metadata.get("pool") == pool]
    assert ours == [
        hv.DomainRecord(
            uuid=domain_uuid,
            name=hv.domain_name(domain_uuid),
            active=True,
            metadata={"vm": "42", "pool": pool},
        )
    ]
    # The test driver's own domain ("test") carries no metadata of ours.
    assert all(r.name.startswith("ks-") for r in hypervisor.domains())


def test_the_disk_path_is_the_one_defined(hypervisor, define, pool):
    domain_uuid = define()
    assert hypervisor.domain_disk_path(domain_uuid) == f"/nonexistent/{pool}/{domain_uuid}.qcow2"


def test_the_disk_chain_starts_with_the_disk_the_guest_writes_to(hypervisor, define):
    domain_uuid = define()
    hypervisor.domain_start(domain_uuid)
    chain = hypervisor.domain_disk_chain(domain_uuid)
    assert chain[0] == hypervisor.domain_disk_path(domain_uuid)


def test_a_guest_without_an_agent_is_not_connected(hypervisor, define):
    domain_uuid = define()
    hypervisor.domain_start(domain_uuid)
    assert hypervisor.domain_agent_connected(domain_uuid) is False


def test_redefining_a_domain_changes_its_definition(hypervisor, define, pool):
    domain_uuid = define()
    other = hypervisor.volume_create(pool, "other.qcow2", capacity=2**20)
    hypervisor.domain_define(hv.domain_xml(domain_spec(domain_uuid, other.path, pool=pool)))
    assert hypervisor.domain_disk_path(domain_uuid) == other.path
    assert other.path in hypervisor.domain_xml_of(domain_uuid, inactive=True)


def test_redefining_a_running_domain_changes_only_its_next_boot(hypervisor, define, pool):
    domain_uuid = define()
    hypervisor.domain_start(domain_uuid)
    before = hypervisor.domain_disk_path(domain_uuid)
    other = hypervisor.volume_create(pool, "other.qcow2", capacity=2**20)
    hypervisor.domain_define(hv.domain_xml(domain_spec(domain_uuid, other.path, pool=pool)))
    assert hypervisor.domain_disk_path(domain_uuid) == before
    assert other.path in hypervisor.domain_xml_of(domain_uuid, inactive=True)


def test_a_stopped_guests_console_takes_no_input(hypervisor, define):
    with pytest.raises(hv.InvalidDomainState, match="not running"):
        hypervisor.console_send(define(), b"ls\n")


# --- The guests' network ----------------------------------------------------------------------


def test_a_running_network_is_active(hypervisor, network):
    assert hypervisor.network_active(network)


def test_a_network_never_made_is_not_active(hypervisor):
    assert not hypervisor.network_active("contract-never-made")


def test_a_reservation_hands_the_address_to_the_mac(hypervisor, network):
    hypervisor.network_reserve(network, mac="52:54:00:AA:00:01", address="10.213.7.11")
    assert hypervisor.network_reservations(network) == {"52:54:00:aa:00:01": "10.213.7.11"}


def test_a_new_reservation_replaces_the_macs_earlier_one(hypervisor, network):
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:01", address="10.213.7.11")
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:01", address="10.213.7.12")
    assert hypervisor.network_reservations(network) == {"52:54:00:aa:00:01": "10.213.7.12"}


def test_a_reserved_address_moves_to_the_new_mac(hypervisor, network):
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:01", address="10.213.7.11")
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:02", address="10.213.7.11")
    assert hypervisor.network_reservations(network) == {"52:54:00:aa:00:02": "10.213.7.11"}


def test_reserving_the_same_again_changes_nothing(hypervisor, network):
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:01", address="10.213.7.11")
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:01", address="10.213.7.11")
    assert hypervisor.network_reservations(network) == {"52:54:00:aa:00:01": "10.213.7.11"}


def test_releasing_forgets_only_that_macs_reservation(hypervisor, network):
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:01", address="10.213.7.11")
    hypervisor.network_reserve(network, mac="52:54:00:aa:00:02", address="10.213.7.12")
    hypervisor.network_release(network, mac="52:54:00:AA:00:01")
    assert hypervisor.network_reservations(network) == {"52:54:00:aa:00:02": "10.213.7.12"}


def test_releasing_on_a_missing_network_is_fine(hypervisor):
    hypervisor.network_release("contract-never-made", mac="52:54:00:aa:00:01")


def test_reserving_on_a_missing_network_is_refused(hypervisor):
    with pytest.raises(hv.HypervisorError, match="contract-never-made"):
        hypervisor.network_reserve("contract-never-made", mac="52:54:00:aa:00:01", address="x")


def test_a_missing_network_has_no_leases(hypervisor):
    assert hypervisor.network_leases("contract-never-made") == {}


def test_a_removed_network_is_not_active(hypervisor):
    spec = hv.NetworkSpec("contract-removed", "10.213.8.1", "255.255.255.0", "a", "b", False)
    hypervisor.network_remove(spec)  # removing one that is not there is fine
    assert not hypervisor.network_active(spec.name)
