"""The second libvirt host the multi-host tests use (`second_libvirtd`): a daemon of its own, the
same pool path as the first host but its own files there, real guests, and it can go down and come
back."""

import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from tests import second_host
from tests.conftest import wait_for
from vms import hypervisor, image_build
from vms.image_upload import image_upload, image_volumes
from vms.models import Host

pytestmark = pytest.mark.libvirt

SYSTEM_URI = "qemu:///system"
SYSTEM = hypervisor.Hypervisor(SYSTEM_URI)


@pytest.fixture(scope="module")
def second(second_libvirtd, test_pool):
    """A second host shadowing this run's pool folder, with a pool of the same name and path."""
    host = second_libvirtd(Path(test_pool["pool_path"]).parent)
    host.hypervisor.pool_ensure(test_pool["pool_name"], test_pool["pool_path"])
    host.mkdir(test_pool["console_dir"])  # its virtlogd writes the console logs
    yield host
    host.close()


@pytest.fixture(scope="module")
def second_image(second, test_pool, guest_files):
    """The busybox image's volumes, uploaded into the second host's pool."""
    config = {**test_pool, "libvirt_uri": second.uri}
    layer_id = image_upload(host=Host(**config), files=guest_files)
    kernel, initrd, root = (
        second.hypervisor.volume_info(test_pool["pool_name"], name)
        for name in image_volumes(layer_id)
    )
    return kernel, initrd, root


def host_uuid(uri: str) -> str:
    conn = libvirt.open(uri)
    try:
        return ET.fromstring(conn.getCapabilities()).findtext("host/uuid")
    finally:
        conn.close()


def guest_xml(second, test_pool, second_image, disk_path: str) -> tuple[uuid.UUID, str, str]:
    kernel, initrd, _root = second_image
    domain_uuid = uuid.uuid4()
    console_log = str(Path(test_pool["console_dir"]) / f"{domain_uuid}.log")
    spec = hypervisor.DomainSpec(
        uuid=domain_uuid,
        domain_type="qemu",
        vcpus=1,
        memory_mib=256,
        disk_path=disk_path,
        mac="52:54:00:5e:c0:01",
        kernel_path=kernel.path,
        initrd_path=initrd.path,
        cmdline=image_build.CMDLINE,
        console_log=console_log,
        metadata={"pool": test_pool["pool_name"]},
    )
    return domain_uuid, console_log, hypervisor.domain_xml(spec)


def test_it_answers_as_a_host_of_its_own(second):
    conn = libvirt.open(second.uri)
    try:
        assert conn.getHostname()
        assert conn.getLibVersion() >= 9_000_000
        assert conn.getURI() == second.uri
    finally:
        conn.close()
    assert host_uuid(second.uri) == second.host_uuid
    assert host_uuid(SYSTEM_URI) != second.host_uuid


def test_the_same_pool_path_holds_other_files_on_each_host(second, test_pool):
    pool, path = test_pool["pool_name"], Path(test_pool["pool_path"])
    on_second = second.hypervisor.volume_create(pool, "only-second.qcow2", capacity=2**20)
    on_system = SYSTEM.volume_create(pool, "only-system.qcow2", capacity=2**20)
    try:
        assert on_second.path == str(path / "only-second.qcow2")
        assert on_system.path == str(path / "only-system.qcow2")
        assert "only-second.qcow2" not in SYSTEM.volume_names(pool)
        assert "only-system.qcow2" not in second.hypervisor.volume_names(pool)
        # From outside, the second host's files are in its private folder.
        assert second.outside(on_second.path) == second.private_dir / "pool" / "only-second.qcow2"
        assert second.outside(on_second.path).exists()
        assert not (path / "only-second.qcow2").exists()
        assert not second.outside(on_system.path).exists()
    finally:
        second.hypervisor.volume_delete(pool, "only-second.qcow2")
        SYSTEM.volume_delete(pool, "only-system.qcow2")


def test_a_guest_boots_on_a_layer_of_the_second_hosts_image(second, test_pool, second_image):
    pool = test_pool["pool_name"]
    root = second_image[2]
    disk = second.hypervisor.volume_create(
        pool, "guest.qcow2", capacity=image_build.ROOT_FS_BYTES, backing_path=root.path
    )
    domain_uuid, console_log, xml = guest_xml(second, test_pool, second_image, disk.path)
    # The backing file is named by the same absolute path as it would be on the first host.
    assert second.hypervisor.volume_info(pool, "guest.qcow2").backing_path == root.path
    second.hypervisor.domain_define(xml)
    try:
        second.hypervisor.domain_start(domain_uuid)
        log = second.outside(console_log)

        def booted():
            return log.exists() and image_build.READY_LINE in log.read_text(errors="replace")

        wait_for(booted, timeout=120, interval=0.5, what="the guest's ready line")
        assert SYSTEM.domain_state(domain_uuid) is None
    finally:
        second.hypervisor.domain_undefine(domain_uuid)
        second.hypervisor.volume_delete(pool, "guest.qcow2")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_takes_it_down_with_its_guests_and_start_brings_back_its_domains(
    second, test_pool, second_image
):
    pool = test_pool["pool_name"]
    disk = second.hypervisor.volume_create(
        pool,
        "stopped.qcow2",
        capacity=image_build.ROOT_FS_BYTES,
        backing_path=second_image[2].path,
    )
    domain_uuid, _log, xml = guest_xml(second, test_pool, second_image, disk.path)
    conn = libvirt.open(second.uri)
    conn.defineXML(xml).create()  # no need to wait for the boot: QEMU runs
    conn.close()
    processes = second_host.namespace_pids(second.namespace, second.uid)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in processes]
    assert any(b"qemu-system" in command for command in commands)
    assert any(b"virtlogd" in command for command in commands)

    second.stop()
    assert not [pid for pid in processes if alive(pid)]
    began = time.monotonic()
    with pytest.raises(libvirt.libvirtError, match="Connection refused"):
        libvirt.open(second.uri)
    assert time.monotonic() - began < 5
    libvirt.open(SYSTEM_URI).close()

    second.start()
    conn = libvirt.open(second.uri)
    try:
        domain = conn.lookupByUUIDString(str(domain_uuid))
        assert domain.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
        domain.undefine()
        conn.storagePoolLookupByName(pool).storageVolLookupByName("stopped.qcow2").delete(0)
    finally:
        conn.close()
