"""The HTML pages: who sees what, what a click does, and queries that do not grow with data."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from operations.models import Operation, OperationState
from snapshots.models import Snapshot, SnapshotState
from tests.factories import image_row, layer_row, vm_row
from vms.models import VMOperationKind, VMState


@pytest.fixture
def image(db):
    return image_row()


def add_snapshots(vm, count):
    for i in range(count):
        Snapshot.objects.create(
            owner=vm.owner,
            source_vm=vm,
            source_vm_name=vm.name,
            image=vm.image,
            name=f"s{i}",
            layer=layer_row(host=vm.host),
            state=SnapshotState.READY,
        )


def queries_for(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_dashboard_queries_do_not_grow_with_vms(client, alice, image):
    client.force_login(alice)
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, 2)
    few = queries_for(client, "/")
    for i in range(10):
        add_snapshots(vm_row(owner=alice, image=image, name=f"more-{i}"), 3)
    assert queries_for(client, "/") == few


def test_vm_page_queries_do_not_grow_with_snapshots(client, alice, image):
    client.force_login(alice)
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, 1)
    few = queries_for(client, f"/vms/{vm.pk}/")
    add_snapshots(vm, 20)
    assert queries_for(client, f"/vms/{vm.pk}/") == few


def test_snapshot_page_queries_do_not_grow_with_snapshots(client, alice, image):
    client.force_login(alice)
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, 1)
    few = queries_for(client, "/snapshots/")
    add_snapshots(vm_row(owner=alice, image=image, name="other"), 20)
    assert queries_for(client, "/snapshots/") == few


def test_pages_need_a_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_dashboard_lists_only_the_users_own_vms(client, alice, bob, image):
    vm_row(owner=alice, image=image, name="alices-vm")
    vm_row(owner=bob, image=image, name="bobs-vm")
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "alices-vm" in page
    assert "bobs-vm" not in page


def test_another_users_vm_page_is_the_same_404_as_a_missing_one(client, alice, bob, image):
    bobs = vm_row(owner=bob, image=image)
    client.force_login(alice)
    theirs = client.get(f"/vms/{bobs.pk}/")
    missing = client.get("/vms/00000000-0000-0000-0000-000000000000/")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content


def test_actions_are_posts_only(client, alice, image):
    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    assert client.get(f"/vms/{vm.pk}/stop/").status_code == 405
    assert not Operation.objects.exists()


def test_a_refused_action_shows_its_reason(client, alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.RUNNING)
    client.force_login(alice)
    response = client.post(f"/vms/{vm.pk}/start/", follow=True)
    assert "is already running" in response.content.decode()


def test_take_snapshot_from_the_vm_page_records_the_operation(client, alice, image):
    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    response = client.post(f"/vms/{vm.pk}/snapshots/take/", {"name": "Before upgrade"}, follow=True)
    assert "Taking snapshot &#x27;Before upgrade&#x27;" in response.content.decode()
    assert Operation.objects.get().kind == "snapshot.take"


def test_the_vm_page_polls_only_while_an_operation_runs(client, alice, image):
    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    assert 'hx-trigger="every 1s"' not in client.get(f"/vms/{vm.pk}/").content.decode()
    client.post(f"/vms/{vm.pk}/snapshots/take/", {"name": "s"})
    assert 'hx-trigger="every 1s"' in client.get(f"/vms/{vm.pk}/").content.decode()


def test_a_redirect_after_a_form_never_leaves_the_site(client, alice, image):
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, 1)
    snapshot = Snapshot.objects.get()
    client.force_login(alice)
    response = client.post(
        f"/snapshots/{snapshot.pk}/rename/",
        {"name": "x", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/snapshots/"


def test_a_refused_new_vm_from_a_snapshot_says_why(client, alice, image):
    vm = vm_row(owner=alice, image=image, name="taken")
    add_snapshots(vm, 1)
    snapshot = Snapshot.objects.get()
    client.force_login(alice)
    response = client.post(f"/snapshots/{snapshot.pk}/new-vm/", {"name": "taken"}, follow=True)
    assert (
        "You already have a VM named &#x27;taken&#x27;; choose another name."
        in response.content.decode()
    )
    assert response.redirect_chain[-1][0] == "/snapshots/"


def test_the_console_input_limit_is_the_services_on_the_page_and_in_the_form(client, alice, image):
    from vms.forms import ConsoleLineForm
    from vms.services import CONSOLE_LINE_MAX

    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    assert f'name="line" maxlength="{CONSOLE_LINE_MAX}"' in page
    assert ConsoleLineForm().fields["line"].max_length == CONSOLE_LINE_MAX


def test_a_console_line_over_the_limit_is_refused_naming_the_limit(client, alice, image):
    from vms.services import CONSOLE_LINE_MAX

    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    response = client.post(f"/vms/{vm.pk}/console/", {"line": "x" * (CONSOLE_LINE_MAX + 1)})
    assert response.status_code == 200
    assert f"Keep a line to {CONSOLE_LINE_MAX} characters." in response.content.decode()


def test_the_polled_part_of_the_vm_page_holds_no_form_input_or_dialog(client, alice, image):
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, 2)
    client.force_login(alice)
    client.post(f"/vms/{vm.pk}/snapshots/take/", {"name": "s"})
    response = client.get(f"/vms/{vm.pk}/live/")
    fragment = response.content.decode()
    for tag in ("<form", "<input", "<textarea", "<dialog"):
        assert tag not in fragment, tag
    assert 'hx-trigger="every 1s"' in fragment  # still watching
    assert 'id="snapshot-table" hx-swap-oob="true"' in fragment
    assert 'id="take-snapshot" hx-swap-oob="true"' in fragment
    assert "HX-Trigger" not in response


def test_the_vm_page_keeps_its_forms_and_dialogs_outside_the_polled_part(client, alice, image):
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, 1)
    snapshot = Snapshot.objects.get()
    client.force_login(alice)
    client.post(f"/vms/{vm.pk}/snapshots/take/", {"name": "s"})
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    polled_start = page.index('id="vm-status"')
    polled_end = page.index("</section>", polled_start)
    polled = page[polled_start:polled_end]
    assert "<form" not in polled and "<dialog" not in polled
    assert 'form="vm-action-stop"' in polled  # its buttons submit forms kept outside
    assert 'id="vm-action-stop"' in page
    assert f'<dialog id="restore-{snapshot.pk}">' in page
    assert 'name="name" maxlength="64"' in page


def test_when_the_operation_has_ended_the_last_poll_stops_and_asks_for_a_refresh(
    client, alice, image
):
    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    response = client.get(f"/vms/{vm.pk}/live/")
    assert response["HX-Trigger"] == "vm-changed"
    assert "every 1s" not in response.content.decode()


def _live_keys(fragment: str) -> dict:
    """What the page sends with its next poll: the card's `data-live`, the progress line's
    `data-version`."""
    import re

    card = re.search(r'data-live="([^"]*)"', fragment).group(1)
    progress = re.search(r'id="vm-progress" data-version="([^"]*)"', fragment).group(1)
    return {"card": card, "progress": progress}


def _watching(client, alice, image, snapshots=2):
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, snapshots)
    client.force_login(alice)
    client.post(f"/vms/{vm.pk}/snapshots/take/", {"name": "s"})
    first = client.get(f"/vms/{vm.pk}/live/").content.decode()
    return vm, _live_keys(first)


def test_a_poll_while_nothing_changed_answers_no_content(client, alice, image):
    vm, seen = _watching(client, alice, image)
    response = client.get(f"/vms/{vm.pk}/live/", seen)
    assert response.status_code == 204 and response.content == b""


def test_a_poll_while_nothing_changed_reads_no_snapshot(client, alice, image):
    vm, seen = _watching(client, alice, image)
    with CaptureQueriesContext(connection) as queries:
        client.get(f"/vms/{vm.pk}/live/", seen)
    assert not [q for q in queries if 'FROM "snapshots_snapshot"' in q["sql"]]


def test_a_poll_after_the_progress_moved_answers_only_the_progress_line(client, alice, image):
    vm, seen = _watching(client, alice, image)
    Operation.objects.filter(state=OperationState.QUEUED).update(
        state=OperationState.RUNNING, progress=40, message="Making the layer"
    )
    response = client.get(f"/vms/{vm.pk}/live/", seen)
    fragment = response.content.decode()
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    assert 'id="vm-progress"' in fragment and 'hx-swap-oob="true"' in fragment
    assert "Making the layer" in fragment and "40%" in fragment
    assert 'id="snapshot-table"' not in fragment and 'id="vm-status"' not in fragment
    assert f'data-version="{seen["progress"]}"' not in fragment  # the next poll says what it has


def test_a_poll_after_the_operation_ended_answers_the_whole_card_and_asks_for_a_refresh(
    client, alice, image
):
    vm, seen = _watching(client, alice, image)
    Operation.objects.update(state=OperationState.SUCCEEDED, progress=100)
    response = client.get(f"/vms/{vm.pk}/live/", seen)
    fragment = response.content.decode()
    assert 'id="vm-status"' in fragment and "every 1s" not in fragment
    assert 'id="snapshot-table" hx-swap-oob="true"' in fragment
    assert response["HX-Trigger"] == "vm-changed"


def test_a_poll_from_a_page_that_shows_another_state_answers_the_whole_card(client, alice, image):
    vm, seen = _watching(client, alice, image)
    response = client.get(f"/vms/{vm.pk}/live/", {**seen, "card": "stopped::"})
    assert 'id="vm-status"' in response.content.decode()


def test_the_snapshot_dialogs_are_refreshed_from_their_own_fragment(client, alice, image):
    vm = vm_row(owner=alice, image=image)
    add_snapshots(vm, 2)
    client.force_login(alice)
    response = client.get(f"/vms/{vm.pk}/snapshot-dialogs/")
    assert response.status_code == 200
    for snapshot in Snapshot.objects.all():
        assert f'<dialog id="newvm-{snapshot.pk}">' in response.content.decode()


def test_a_vms_disk_reads_as_entered_on_the_dashboard_and_its_page(client, alice, image):
    client.force_login(alice)
    vm = vm_row(owner=alice, image=image, disk_bytes=4 * 1024**3)
    for url in ("/", f"/vms/{vm.pk}/"):
        html = client.get(url).content.decode()
        assert "4 GiB" in html, url
        assert "4.0 GB" not in html, url


def test_console_input_to_a_vm_missing_from_its_host_says_why_on_the_page(
    client, alice, image, fake_hosts
):
    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    response = client.post(f"/vms/{vm.pk}/console/", {"line": "ls"})
    assert f"VM &#x27;{vm.name}&#x27; is missing from its host" in response.content.decode()


def test_console_input_to_a_vm_missing_from_its_host_is_a_409_in_the_api(
    client, alice, image, fake_hosts
):
    vm = vm_row(owner=alice, image=image)
    client.force_login(alice)
    response = client.post(f"/api/vms/{vm.pk}/console/", {"line": "ls"}, "application/json")
    assert response.status_code == 409
    assert "missing from its host" in response.json()["error"]["message"]


def test_console_input_to_a_vm_whose_host_does_not_answer_is_a_503_in_the_api(
    client, alice, image, fake_hosts
):
    vm = vm_row(owner=alice, image=image)
    fake_hosts[vm.host.libvirt_uri].reachable = False
    client.force_login(alice)
    response = client.post(f"/api/vms/{vm.pk}/console/", {"line": "ls"}, "application/json")
    assert response.status_code == 503
    assert "does not answer" in response.json()["error"]["message"]


def test_a_failed_create_shows_its_reason_with_retry_and_delete(client, alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.FAILED)
    Operation.objects.create(
        kind=VMOperationKind.CREATE,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        state=OperationState.FAILED,
        error="The hypervisor refused to create VM “x”.",
        detail="The hypervisor refused: internal error: qemu-img exited 1",
    )
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    notice = page[page.index('data-testid="vm-create-failed"') :]
    notice = notice[: notice.index("</div>")]
    assert "Creating this VM failed:" in notice and "refused to create VM" in notice
    assert 'form="vm-action-retry"' in page and 'data-open="delete-vm"' in page
    assert "qemu-img exited" not in page


def test_staff_see_a_failures_technical_detail_in_activity_and_owners_do_not(
    client, alice, charlie, image
):
    vm = vm_row(owner=charlie, image=image, state=VMState.FAILED)
    for owner in (alice, charlie):
        Operation.objects.create(
            kind=VMOperationKind.CREATE,
            owner=owner,
            lock=f"{vm.lock}-{owner.username}",
            target_name="x",
            state=OperationState.FAILED,
            error="The hypervisor refused to create VM “x”.",
            detail="internal error: qemu-img exited 1",
        )
    client.force_login(alice)
    assert "qemu-img exited" not in client.get("/activity/").content.decode()
    client.force_login(charlie)
    assert "qemu-img exited" in client.get("/activity/").content.decode()


def test_a_repair_known_to_fail_is_not_the_main_button(client, alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.ERROR)
    Operation.objects.create(
        kind=VMOperationKind.REPAIR,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        state=OperationState.FAILED,
        error="A layer of this VM's disk is missing from the storage pool, so it cannot be "
        "repaired; delete it instead (its snapshots are kept).",
    )
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    assert 'class="button primary" type="submit" form="vm-action-repair"' not in page
    assert ">Try repair again</button>" in page
    assert "This VM is in error and cannot be repaired:" in page


def test_the_vm_card_shows_what_the_guest_agent_says(client, alice, image, fake_hosts):
    from tests.factories import domain_running
    from vms.hypervisor import GuestInfo

    vm = vm_row(owner=alice, image=image)
    fake = fake_hosts[vm.host.libvirt_uri]
    domain_running(fake, vm)
    fake.agent_answers[vm.domain_uuid] = GuestInfo(
        os_name="Debian GNU/Linux 12 (bookworm)",
        hostname="workbench",
        addresses=("10.213.0.7",),
        uptime_seconds=3 * 3600 + 125,
    )
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    card = page[page.index('data-testid="vm-guest"') :]
    assert card[: card.index("</dd>")].endswith(
        "Debian GNU/Linux 12 (bookworm) · workbench · up 3 h 2 min"
    )
    answer = client.get(f"/api/vms/{vm.pk}/").json()["guest"]
    assert answer["hostname"] == "workbench" and answer["addresses"] == ["10.213.0.7"]


def test_a_vm_without_an_agent_answering_shows_no_guest_line(client, alice, image, fake_hosts):
    from tests.factories import domain_running

    vm = vm_row(owner=alice, image=image)
    domain_running(fake_hosts[vm.host.libvirt_uri], vm)
    client.force_login(alice)
    assert 'data-testid="vm-guest"' not in client.get(f"/vms/{vm.pk}/").content.decode()
    assert client.get(f"/api/vms/{vm.pk}/").json()["guest"] is None
