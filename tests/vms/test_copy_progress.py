"""A copy between hosts says how far it is: the layer it is on and the bytes streamed, written to
its operation no more than twice a second."""

import uuid

import pytest
from django.conf import settings

from operations.models import Operation
from operations.services import operation_reporter
from tests.factories import host_row, layer_row
from vms import layers
from vms.hypervisor import Hypervisor
from vms.models import VMOperationKind

MiB = 1024**2


@pytest.fixture
def two_hosts(db, fake_hosts):
    a = host_row(name="a", libvirt_uri="qemu+tcp://a/system", pool_path="/pool")
    b = host_row(name="b", libvirt_uri="qemu+tcp://b/system", pool_path="/pool")
    for host in (a, b):
        fake_hosts[host.libvirt_uri].pool_ensure(host.pool_name, host.pool_path)
    return a, b


def test_seeding_a_chain_says_each_layer_and_the_bytes_streamed(two_hosts, fake_hosts):
    a, b = two_hosts
    base = layer_row(host=a)
    top = layer_row(host=a, parent=base)
    on_a = fake_hosts[a.libvirt_uri]
    for layer in (base, top):
        on_a.volume_create(a.pool_name, layer.volume_name, capacity=4 * MiB)
        on_a.pools[a.pool_name].volumes[layer.volume_name].allocation = 2 * MiB
    heard = []

    copied = layers.layer_chain_seed(top, b, on_progress=lambda *said: heard.append(said))

    assert copied == 2
    assert heard == [
        (0.0, "layer 1 of 2"),
        (0.25, "layer 1 of 2: 1 MiB of 2 MiB"),
        (0.5, "layer 1 of 2: 2 MiB of 2 MiB"),
        (0.5, "layer 2 of 2"),
        (0.75, "layer 2 of 2: 1 MiB of 2 MiB"),
        (1.0, "layer 2 of 2: 2 MiB of 2 MiB"),
    ]


def test_a_copys_report_is_written_at_most_twice_a_second_and_always_at_its_end(alice, monkeypatch):
    monkeypatch.setattr("operations.services.REPORT_SECONDS", 60)  # however slow this machine is
    operation = Operation.objects.create(
        kind=VMOperationKind.MOVE, owner=alice, lock="vm:x", state="running"
    )
    message = "Copying the VM's own disk layer"
    report = operation_reporter(operation, start=40, span=35, message=message)

    report(0.1, "1 MiB of 10 MiB")
    report(0.2, "2 MiB of 10 MiB")  # too soon after the last: not written
    assert Operation.objects.get(pk=operation.pk).message.endswith(": 1 MiB of 10 MiB")
    report(1.0, "10 MiB of 10 MiB")

    operation.refresh_from_db()
    assert (operation.progress, operation.message) == (
        75,
        "Copying the VM's own disk layer: 10 MiB of 10 MiB",
    )


@pytest.mark.libvirt
def test_a_transfer_between_pools_says_the_bytes_streamed_up_to_the_whole_file(test_pool, tmp_path):
    host = Hypervisor(test_pool["libvirt_uri"])
    other = f"{test_pool['pool_name']}-copy-{uuid.uuid4().hex[:6]}"
    host.pool_ensure(other, str(settings.STORAGE_DIR / "tests" / other))
    data = tmp_path / "layer.raw"
    data.write_bytes(b"\x5a" * (3 * MiB) + b"\0" * (5 * MiB))
    name = f"progress-{uuid.uuid4().hex[:6]}.raw"
    host.volume_upload(test_pool["pool_name"], name, str(data))
    heard = []
    try:
        host.volume_transfer(
            test_pool["pool_name"], host, other, name, on_bytes=lambda *said: heard.append(said)
        )
    finally:
        host.volume_delete(test_pool["pool_name"], name)
        host.pool_remove(other)

    assert heard, "nothing was said"
    assert [done for done, _total in heard] == sorted(done for done, _total in heard)
    assert heard[-1][0] == heard[-1][1] >= 3 * MiB


@pytest.mark.libvirt
def test_an_upload_says_the_bytes_sent_up_to_the_whole_file(test_pool, tmp_path):
    host = Hypervisor(test_pool["libvirt_uri"])
    data = tmp_path / "disk.raw"
    data.write_bytes(b"\x5a" * (9 * MiB))
    name = f"upload-{uuid.uuid4().hex[:6]}.raw"
    heard = []
    try:
        host.volume_upload(
            test_pool["pool_name"], name, str(data), on_bytes=lambda *said: heard.append(said)
        )
    finally:
        host.volume_delete(test_pool["pool_name"], name)

    assert len(heard) > 1
    assert [done for done, _total in heard] == sorted(done for done, _total in heard)
    assert heard[-1] == (9 * MiB, 9 * MiB)
