"""The hypervisor adapter's own tests: no Django, no database rows.

`hypervisor` is each contract test's host, twice: the in-memory `FakeHypervisor`, and the real
`Hypervisor` over libvirt's test driver (`test:///default`, an in-process host that keeps its
pools, volumes, domains and networks in memory). The test driver's state lives as long as the
process, so everything a test makes there has a name of its own and is removed afterwards.
"""

from __future__ import annotations

import uuid

import pytest

from vms import hypervisor as hv
from vms.hypervisor.fake import FakeHypervisor

TEST_URI = "test:///default"


@pytest.fixture(params=["fake", "libvirt"])
def hypervisor(request):
    if request.param == "fake":
        return FakeHypervisor(TEST_URI)
    return hv.Hypervisor(TEST_URI)


@pytest.fixture
def pool(hypervisor):
    """A pool of this test's own, removed with what is in it."""
    name = f"contract-{uuid.uuid4().hex[:8]}"
    hypervisor.pool_ensure(name, f"/nonexistent/{name}")
    yield name
    hypervisor.pool_remove(name)


@pytest.fixture
def define(hypervisor, pool):
    """Define a guest of this service (with its metadata) on a new layer; returns its UUID.
    Every guest defined is undefined afterwards."""
    defined = []

    def make(**metadata: str) -> uuid.UUID:
        domain_uuid = uuid.uuid4()
        disk = hypervisor.volume_create(pool, f"{domain_uuid}.qcow2", capacity=2**20)
        hypervisor.domain_define(
            hv.domain_xml(domain_spec(domain_uuid, disk.path, pool=pool, **metadata))
        )
        defined.append(domain_uuid)
        return domain_uuid

    yield make
    for domain_uuid in defined:
        hypervisor.domain_undefine(domain_uuid)


def domain_spec(domain_uuid: uuid.UUID, disk_path: str, **metadata: str) -> hv.DomainSpec:
    return hv.DomainSpec(
        uuid=domain_uuid,
        domain_type="qemu",
        vcpus=1,
        memory_mib=64,
        disk_path=disk_path,
        mac="52:54:00:12:34:56",
        kernel_path="/nonexistent/vmlinuz",
        initrd_path="/nonexistent/initrd",
        cmdline="console=ttyS0",
        console_log="/nonexistent/console.log",
        metadata={"vm": "contract", **metadata},
    )


def network_spec() -> hv.NetworkSpec:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    return hv.NetworkSpec(
        name=name,
        gateway="10.213.7.1",
        netmask="255.255.255.0",
        dhcp_start="10.213.7.10",
        dhcp_end="10.213.7.200",
        internet=False,
    )


@pytest.fixture
def network(hypervisor):
    """A running guests' network of this test's own; returns its name.

    The test driver has no network filters, so `network_ensure` (which defines the guests'
    filter too) runs on the fake only; on the test driver the network is defined directly."""
    spec = network_spec()
    if isinstance(hypervisor, FakeHypervisor):
        hypervisor.network_ensure(spec, host_addresses=[])
    else:
        hypervisor.connection.networkDefineXML(hv.network_xml(spec)).create()
    yield spec.name
    hypervisor.network_remove(spec)
