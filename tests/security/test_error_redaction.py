"""Owners see hosts by name: errors they can read carry no libvirt URI or address; the log keeps
the words as they were, for staff."""

import logging

from core.errors import public_error
from operations.models import OperationState
from operations.services import operation_run
from tests.factories import host_row, image_row, vm_row
from vms.models import VMOperationKind

URI = "qemu+ssh://root@10.0.0.7:2222/system"


def test_a_known_host_uri_becomes_the_host_name(db):
    host_row(name="b", libvirt_uri=URI)
    text = public_error(f"libvirt at {URI} does not answer (Connection refused).")
    assert text == "libvirt at host b does not answer (Connection refused)."


def test_a_known_host_address_becomes_the_host_name(db):
    host_row(name="b", libvirt_uri=URI)
    text = public_error("ssh: connect to host 10.0.0.7 port 2222: Connection refused")
    assert text == "ssh: connect to host host b port 2222: Connection refused"


def test_an_unknown_uri_is_hidden_too(db):
    text = public_error("libvirt at qemu+tls://secret.example.com/system does not answer.")
    assert text == "libvirt at the host does not answer."


def test_a_failed_operation_records_the_host_name_and_logs_the_uri(db, alice, fake_hosts, caplog):
    host = host_row(name="b", libvirt_uri=URI)
    fake_hosts[URI].reachable = False
    vm = vm_row(owner=alice, image=image_row(host=host), state="stopped")
    from operations.services import operation_start

    operation = operation_start(
        kind=VMOperationKind.START, owner=alice, lock=vm.lock, subject=vm, target_name=vm.name
    )

    with caplog.at_level(logging.WARNING, logger="operations.services"):
        operation_run(operation.pk)
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert URI not in operation.error and "10.0.0.7" not in operation.error
    assert "host b" in operation.error
    assert URI in caplog.text


def test_the_owner_pages_and_api_show_no_host_address(client, alice, db, fake_hosts):
    from rest_framework.test import APIClient

    from accounts.services import token_create
    from operations.models import Operation

    fake_hosts[URI].reachable = False  # the pages read the console; the host is made up
    host = host_row(name="b", libvirt_uri=URI)
    vm = vm_row(owner=alice, image=image_row(host=host), state="stopped")
    Operation.objects.create(
        kind=VMOperationKind.START,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        state=OperationState.RUNNING,
    )
    from operations.services import operation_finish

    operation = Operation.objects.holding(vm.lock).get()
    operation_finish(operation, error=f"libvirt refused: libvirt at {URI} does not answer.")
    client.force_login(alice)
    for page in ("/activity/", vm.get_absolute_url()):
        text = client.get(page).content.decode()
        assert "does not answer" in text and "10.0.0.7" not in text, page
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=alice, name='t')[1]}")
    assert "10.0.0.7" not in api.get(f"/api/operations/{operation.pk}/").content.decode()
