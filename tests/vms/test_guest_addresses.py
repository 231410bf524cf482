"""A VM's address on the guests' network: one per VM for its life, never one DHCP would refuse
to hand it."""

import ipaddress

import pytest

from tests.factories import image_row, vm_row
from vms import hypervisor, network

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_subnet(settings):
    # .0 network, .1 gateway, .2 to .6 for guests, .7 broadcast.
    settings.GUEST_SUBNET = ipaddress.IPv4Network("10.77.0.0/29")


@pytest.fixture
def new_vm(alice):
    image = image_row()
    return lambda: vm_row(owner=alice, image=image)


def test_a_vm_keeps_the_address_it_was_given(new_vm, small_subnet):
    vm = new_vm()
    first = network.vm_address(vm)
    vm.refresh_from_db()
    assert network.vm_address(vm) == first == vm.ip_address


def test_two_vms_never_share_an_address(new_vm, small_subnet):
    addresses = {network.vm_address(new_vm()) for _ in range(5)}
    assert len(addresses) == 5


def test_an_address_still_leased_to_a_deleted_vms_mac_is_not_given(new_vm, small_subnet):
    # A deleted guest's DHCP lease outlives it; dnsmasq would give a new MAC reserved on that
    # address some other one, which the new guest's filter does not let it send from.
    leased = {f"10.77.0.{n}": f"52:54:00:00:00:0{n}" for n in (2, 3, 4, 5)}
    vm = new_vm()
    assert network.vm_address(vm, leased) == "10.77.0.6"


def test_an_address_leased_to_the_vms_own_mac_is_its_to_take(new_vm, small_subnet):
    vm = new_vm()
    leased = {f"10.77.0.{n}": "52:54:00:00:00:09" for n in (2, 3, 4, 5)}
    leased["10.77.0.6"] = vm.mac_address.upper()
    assert network.vm_address(vm, leased) == "10.77.0.6"


def test_a_full_subnet_is_a_clear_error(new_vm, small_subnet):
    for _ in range(5):
        network.vm_address(new_vm())
    with pytest.raises(hypervisor.HypervisorError, match="no free address"):
        network.vm_address(new_vm())


def test_an_address_reserved_for_another_installations_guest_is_not_given(
    new_vm, small_subnet, fake_hosts, settings
):
    # Another installation on the same libvirtd hands out addresses on the same network; its
    # reservations are in the network, not in this installation's database.
    settings.GUEST_NETWORK = "guests"
    vm = new_vm()
    host = vm.host
    host.libvirt_uri = "qemu:///system"
    host.save()
    network.host_network_ensure(host)
    for n in (2, 3, 4, 5):
        host.hypervisor.network_reserve(
            "guests", mac=f"52:54:00:aa:00:0{n}", address=f"10.77.0.{n}"
        )
    assert network.vm_network_attach(vm)["ip_address"] == "10.77.0.6"
    assert host.hypervisor.network_reservations("guests")["52:54:00:aa:00:02"] == "10.77.0.2"
