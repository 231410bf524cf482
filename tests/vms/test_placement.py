"""Placement rules (no libvirt): which host a new VM goes to, and that parallel requests never
hand out more than a host has."""

import pytest
from django.db import transaction

from accounts.services import token_create, user_create
from core.errors import Unavailable
from snapshots.services import snapshot_new_vm
from tests.factories import GIB, host_row, image_row, layer_row, snapshot_row, vm_row
from tests.operations.test_parallel_requests import all_at_once, post
from vms.models import VM, HostState, LayerCopy, LayerCopyState, VMState, vm_id_of_lock
from vms.placement import host_place
from vms.services import vm_create


def place(*, layer=None, memory_mib=256, vcpus=1, disk_bytes=4 * GIB):
    with transaction.atomic():
        return host_place(vcpus=vcpus, memory_mib=memory_mib, disk_bytes=disk_bytes, layer=layer)


def load(host, owner, *, memory_mib=256, count=1):
    image = image_row(host=host, slug=f"load-{host.name}")
    for _ in range(count):
        vm_row(owner=owner, image=image, memory_mib=memory_mib)


def test_a_new_vm_goes_to_the_least_loaded_host(alice):
    busy, idle = host_row(name="busy"), host_row(name="idle")
    load(busy, alice, count=3)
    load(idle, alice, count=1)
    assert place() == idle


def test_a_host_holding_the_snapshots_layers_is_preferred_over_a_less_loaded_one(alice):
    holder = host_row(name="holder")
    host_row(name="empty")
    image = image_row(host=holder)
    vm = vm_row(owner=alice, image=image)
    snapshot = snapshot_row(vm)
    load(holder, alice, count=2)
    assert place(layer=snapshot.layer) == holder


def test_a_copy_of_the_layers_counts_as_holding_them(alice):
    origin, copy_holder = host_row(name="a"), host_row(name="b")
    host_row(name="c")
    layer = layer_row(host=origin)
    LayerCopy.objects.create(layer=layer, host=copy_holder, state=LayerCopyState.READY)
    load(origin, alice, memory_mib=origin.memory_mib)  # full
    assert place(layer=layer) == copy_holder


def test_a_half_made_copy_does_not_count(alice):
    origin, copying, other = host_row(name="a"), host_row(name="b"), host_row(name="c")
    layer = layer_row(host=origin)
    LayerCopy.objects.create(layer=layer, host=copying, state=LayerCopyState.COPYING)
    load(origin, alice, memory_mib=origin.memory_mib)
    load(copying, alice, count=2)
    assert place(layer=layer) == other


@pytest.mark.parametrize("state", [HostState.DRAINING, HostState.DISABLED])
def test_a_draining_or_disabled_host_takes_no_new_vm(alice, state):
    out, available = host_row(name="out", state=state), host_row(name="available")
    load(available, alice, count=5)
    assert place(layer=layer_row(host=out)) == available


def test_a_host_that_does_not_answer_takes_no_new_vm(alice):
    host_row(name="down", reachable=False)
    up = host_row(name="up")
    load(up, alice, count=5)
    assert place() == up


@pytest.mark.parametrize(
    "size",
    [
        {"memory_mib": 1024},
        {"vcpus": 3},
        {"disk_bytes": 11 * GIB},
    ],
    ids=["memory", "vcpus", "disk"],
)
def test_a_host_without_room_for_any_one_resource_is_skipped(alice, size):
    small = host_row(name="small", memory_mib=1024, vcpus=2, disk_gib=10)
    big = host_row(name="big")
    load(big, alice, count=20)  # more loaded than the small host: chosen only when it must
    assert place(**size) == big
    assert place() == small


def test_vms_being_deleted_free_their_room(alice):
    host = host_row(name="only", memory_mib=512)
    image = image_row(host=host)
    vm_row(owner=alice, image=image, memory_mib=512, state=VMState.DELETING)
    assert place(memory_mib=512) == host


def test_no_host_with_room_is_a_clear_refusal(alice):
    image = image_row(host=host_row(name="tiny", memory_mib=256))
    with pytest.raises(Unavailable, match="No host has room for a VM with 512 MiB"):
        vm_create(owner=alice, name="big", image=image, memory_mib=512)
    assert not VM.objects.filter(owner=alice).exists()


def test_a_vm_from_a_snapshot_is_placed_too(alice):
    origin = host_row(name="origin", memory_mib=256)
    other = host_row(name="other")
    vm = vm_row(owner=alice, image=image_row(host=origin), memory_mib=256, state=VMState.STOPPED)
    operation = snapshot_new_vm(snapshot=snapshot_row(vm), user=alice, name="copy")
    assert VM.objects.get(pk=vm_id_of_lock(operation.lock)).host == other


def test_the_api_answers_503_when_no_host_has_room(client, alice):
    image_row(host=host_row(name="tiny", memory_mib=256))
    key = token_create(user=alice, name="t")[1]
    response = client.post(
        "/api/vms/",
        {"name": "big", "image": "busybox", "memory_mib": 512},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


@pytest.fixture
def many_users(plans):
    return [
        user_create(username=f"user{i}", password="correct-horse-battery", email=f"u{i}@e.com")
        for i in range(8)
    ]


def test_parallel_creates_by_many_users_never_overbook_a_host(live_server, many_users, settings):
    settings.API_MUTATION_RATE = "100000/min"
    host = host_row(name="shared", memory_mib=1024)
    image_row(host=host)
    calls = []
    for user in many_users:
        key = token_create(user=user, name="t")[1]
        body = {"name": "vm", "image": "busybox", "memory_mib": 256}
        calls.append(lambda key=key, body=body: post(f"{live_server.url}/api/vms/", key, body))
    answers = all_at_once(calls)
    assert sorted(answers) == [202] * 4 + [503] * 4
    assert VM.objects.filter(host=host).count() == 4
