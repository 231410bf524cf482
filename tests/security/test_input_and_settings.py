"""Bad input stays out, logins cannot be guessed, production settings are safe."""

import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET

import pytest
from django.test import Client
from django.utils.html import escape

from core.errors import RateLimited
from snapshots.models import Snapshot
from tests.conftest import ROOT
from tests.factories import domain_running, image_row, vm_row
from vms import hypervisor
from vms.image_upload import UnsafeImage, inspect_qcow2
from vms.services import console_send

HOSTILE_NAMES = [
    "<domain><devices><disk/></devices></domain>",
    "'; rm -rf / #",
    "../../etc/passwd",
    "\u202egnp.exe",
    'a&amp;b"quoted"',
]


def spec(**overrides):
    values = {
        "uuid": uuid.uuid4(),
        "domain_type": "qemu",
        "vcpus": 1,
        "memory_mib": 256,
        "disk_path": "/pool/disk.qcow2",
        "mac": "52:54:00:00:00:01",
        "kernel_path": "/pool/k",
        "initrd_path": "/pool/i",
        "cmdline": "console=ttyS0",
        "console_log": "/console/x.log",
        "metadata": {"vm": "x"},
    }
    values.update(overrides)
    return hypervisor.DomainSpec(**values)


@pytest.mark.parametrize("text", HOSTILE_NAMES)
def test_text_in_domain_xml_stays_text(text):
    root = ET.fromstring(hypervisor.domain_xml(spec(cmdline=text, metadata={"vm": text})))
    assert root.findtext("os/cmdline") == text
    assert [child.tag for child in root.find("devices")].count("disk") == 1


@pytest.fixture
def image_rows(db):
    """An image known to the database only (for rules that never reach libvirt)."""
    return image_row()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_kept_as_plain_text(client, alice, image_rows, name):
    client.force_login(alice)
    vm = vm_row(owner=alice, image=image_rows, name="box")
    client.post(f"/vms/{vm.pk}/snapshots/take/", {"name": name})
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    assert escape(name) in page  # shown escaped, never as markup
    if "<" in name:
        assert name not in page
    assert Snapshot.objects.get().name == name


@pytest.mark.parametrize(("name", "status"), [("nul\x00byte", 400), ("x" * 10_000, 400), ("", 400)])
def test_unusable_names_are_refused_with_400(alice, image_rows, name, status):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(alice)
    response = api.post("/api/vms/", {"name": name, "image": image_rows.slug}, format="json")
    assert response.status_code == status
    assert "name" in response.json()["error"]["fields"]


@pytest.mark.libvirt
def test_the_xml_that_reaches_libvirt_holds_no_user_text(make_vm, alice):
    vm = make_vm(alice, name="<disk>'; ../x \u202e")
    xml = vm.host.hypervisor.domain_xml_of(vm.domain_uuid)
    assert "<disk>'" not in xml and "\u202e" not in xml
    root = ET.fromstring(xml)
    assert root.findtext("name") == f"ks-{vm.domain_uuid}"
    files = [d.find("source").get("file") for d in root.findall("devices/disk")]
    assert files == [
        vm.host.hypervisor.volume_info(vm.host.pool_name, vm.active_layer.volume_name).path
    ]
    assert files[0].endswith(f"/{vm.active_layer.id}.qcow2")


def test_a_qcow2_with_a_backing_file_is_refused(tmp_path):
    base = tmp_path / "base.qcow2"
    top = tmp_path / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "16M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top], check=True
    )
    with pytest.raises(UnsafeImage, match="backing file"):
        inspect_qcow2(str(top))


def test_a_qcow2_with_an_external_data_file_is_refused(tmp_path):
    image = tmp_path / "image.qcow2"
    data = tmp_path / "data.raw"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={data}", image, "16M"],
        check=True,
    )
    with pytest.raises(UnsafeImage, match="external file"):
        inspect_qcow2(str(image))


def test_a_raw_file_posing_as_qcow2_is_refused(tmp_path):
    fake = tmp_path / "fake.qcow2"
    fake.write_bytes(b"\0" * 4096)
    with pytest.raises(UnsafeImage):
        inspect_qcow2(str(fake))


def test_a_self_contained_qcow2_is_accepted(tmp_path):
    image = tmp_path / "ok.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", image, "16M"], check=True)
    assert inspect_qcow2(str(image))["virtual-size"] == 16 * 1024**2


def test_console_input_is_rate_limited_per_user(alice, image_rows, settings, fake_hosts):
    settings.CONSOLE_LINES_PER_MINUTE = 3
    vm = vm_row(owner=alice, image=image_rows)
    domain_running(fake_hosts[vm.host.libvirt_uri], vm)
    for _ in range(3):
        console_send(vm=vm, user=alice, line="ls")
    with pytest.raises(RateLimited, match="more than 3 console lines a minute"):
        console_send(vm=vm, user=alice, line="ls")


def login(client, username, password):
    return client.post("/login/", {"username": username, "password": password})


def test_repeated_wrong_passwords_lock_the_account_out(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "alice", "wrong").status_code == 200  # the form, with its error
    assert login(client, "alice", "wrong").status_code == 429
    locked = login(client, "alice", "correct-horse-battery")
    assert locked.status_code == 429
    assert "Too many attempts" in locked.content.decode()


def test_the_lockout_does_not_reveal_whether_the_account_exists(alice, settings):
    pages = []
    for username, address in (("alice", "10.0.0.1"), ("nobody-by-this-name", "10.0.0.2")):
        client = Client(REMOTE_ADDR=address)
        for _ in range(settings.AXES_FAILURE_LIMIT):
            login(client, username, "wrong")
        response = login(client, username, "wrong")
        pages.append((response.status_code, response.content))
    assert pages[0] == pages[1]
    assert pages[0][0] == 429


def test_logging_in_gives_a_new_session(client, alice):
    client.get("/login/")
    client.session.save()
    before = client.session.session_key
    response = login(client, "alice", "correct-horse-battery")
    assert response.status_code == 302
    assert client.session.session_key != before


def test_state_changes_need_a_csrf_token(alice, image_rows):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    vm = vm_row(owner=alice, image=image_rows)
    assert client.post(f"/vms/{vm.pk}/stop/").status_code == 403


def test_an_unexpected_error_shows_the_projects_page_without_a_traceback(
    alice, settings, monkeypatch
):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(alice)

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("vms.views.usage_for", explode)
    response = client.get("/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert "secret internals" not in body and "Traceback" not in body


def test_check_deploy_passes_under_production_settings():
    env = {
        "PRODUCTION": "1",
        "SECRET_KEY": "k" * 64 + "-not-a-real-key-but-long-enough",
        "ALLOWED_HOSTS": "snapshots.example.com",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
