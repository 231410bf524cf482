"""The activity page narrows to a VM, a kind and a state from its query string, ignores (and
says so) a value that is not a choice, keeps its filters while it polls, and links each
operation to what it acted on."""

import pytest

from operations.models import Operation, OperationState
from snapshots.models import SnapshotOperationKind
from tests.factories import snapshot_row, vm_row
from vms.models import VMOperationKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(alice):
    return vm_row(owner=alice, name="web")


@pytest.fixture
def db_vm(alice, web):
    return vm_row(owner=alice, name="db", image=web.image)


def operation(vm, kind=VMOperationKind.START, state=OperationState.SUCCEEDED, subject=None):
    subject = subject or vm
    return Operation.objects.create(
        kind=kind,
        owner=vm.owner,
        lock=vm.lock,
        subject=subject,
        target_name=subject.name,
        state=state,
    )


def rows(client, query=""):
    response = client.get(f"/activity/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    return page[page.index('id="activity"') :]


def test_the_activity_narrows_to_a_vm(client, alice, web, db_vm):
    operation(web)
    operation(db_vm)
    client.force_login(alice)
    page = rows(client, f"vm={web.pk}")
    assert f'href="/vms/{web.pk}/"' in page
    assert f'href="/vms/{db_vm.pk}/"' not in page


def test_the_activity_narrows_to_a_kind(client, alice, web):
    operation(web, VMOperationKind.START)
    operation(web, VMOperationKind.STOP)
    client.force_login(alice)
    page = rows(client, "kind=vm.stop")
    assert VMOperationKind.STOP.label in page
    assert VMOperationKind.START.label not in page


def test_the_activity_narrows_to_a_state(client, alice, web):
    operation(web, VMOperationKind.START, OperationState.FAILED)
    operation(web, VMOperationKind.STOP, OperationState.SUCCEEDED)
    client.force_login(alice)
    page = rows(client, "state=failed")
    assert VMOperationKind.START.label in page
    assert VMOperationKind.STOP.label not in page


@pytest.mark.parametrize(
    "query",
    [
        "vm=not-a-uuid",
        "vm=00000000-0000-0000-0000-000000000000",
        "kind=nope",
        "state=%00",
        "page=x",
    ],
)
def test_an_invalid_filter_is_ignored_and_said_so_never_an_error(client, alice, web, query):
    operation(web)
    client.force_login(alice)
    page = client.get(f"/activity/?{query}")
    assert page.status_code == 200
    body = page.content.decode()
    assert f'href="/vms/{web.pk}/"' in body
    if not query.startswith("page"):
        assert "is not one of the choices; it is ignored." in body


def test_another_users_vm_is_no_filter_choice(client, bob, web):
    operation(web)
    client.force_login(bob)
    body = client.get(f"/activity/?vm={web.pk}").content.decode()
    assert "web" not in body[body.index('data-testid="activity-filters"') :]


def test_the_polling_activity_keeps_its_filters(client, alice, web):
    operation(web, state=OperationState.RUNNING)
    client.force_login(alice)
    page = rows(client, f"vm={web.pk}&state=running")
    assert f'hx-get="/activity/?page=1&amp;vm={web.pk}&amp;state=running"' in page


def test_a_vm_operation_links_its_vm(client, alice, web):
    operation(web)
    client.force_login(alice)
    assert f'<a href="/vms/{web.pk}/">web</a>' in rows(client)


def test_a_snapshot_operation_links_its_snapshots_row(client, alice, web):
    snapshot = snapshot_row(web, "before-upgrade")
    operation(web, SnapshotOperationKind.TAKE, subject=snapshot)
    client.force_login(alice)
    assert f'<a href="/vms/{web.pk}/#snapshot-{snapshot.pk}">before-upgrade</a>' in rows(client)
