"""A host's libvirt URI is one of a few known shapes: nothing in it runs a program, picks a
socket or key file, or skips a check."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from vms.host_uris import libvirt_uri_problem
from vms.models import Host
from vms.services import host_add, host_ensure_default


@pytest.mark.parametrize(
    "uri",
    [
        "qemu:///system",
        "qemu:///session",
        "qemu+ssh://root@host2/system",
        "qemu+ssh://deploy@10.0.0.7:2222/system?no_tty=1",
        "qemu+tls://host2.example.com/system",
        "qemu+tls://[2001:db8::7]:16514/system",
    ],
)
def test_the_known_transports_are_accepted(uri):
    assert libvirt_uri_problem(uri) is None


def test_qemu_ext_with_a_command_is_refused_with_a_sentence():
    problem = libvirt_uri_problem("qemu+ext:///system?command=/bin/sh")
    assert problem.startswith("qemu+ext URIs run a program")
    assert "qemu+ssh://root@host2/system" in problem


@pytest.mark.parametrize(
    "parameter",
    [
        "command=/bin/sh",
        "socket=/run/other.sock",
        "netcat=/tmp/nc",
        "proxy=native",
        "keyfile=/root/.ssh/id_rsa",
        "known_hosts=/dev/null",
        "no_verify=1",
        "pkipath=/tmp",
        "known_hosts_verify=ignore",
        "name=qemu:///system",
        "anything=else",
    ],
)
def test_parameters_off_the_allow_list_are_refused(parameter):
    problem = libvirt_uri_problem(f"qemu+ssh://root@host2/system?{parameter}")
    assert problem and "is not allowed" in problem


@pytest.mark.parametrize(
    "uri",
    [
        "qemu+unix:///system?socket=/tmp/evil",
        "qemu+libssh2://root@host2/system",
        "qemu://host2/system",
        "xen:///system",
        "qemu+ssh://-oProxyCommand=touch%20x/system",
        "qemu+ssh://root:secret@host2/system",
        "qemu+ssh://root@host2/other",
        "qemu+ssh:///system",
        "test:///default",
    ],
)
def test_other_shapes_are_refused(uri):
    assert libvirt_uri_problem(uri)


def test_tcp_is_refused_unless_allowed():
    uri = "qemu+tcp://127.0.0.1:16509/session"
    assert "ALLOW_TCP_HOSTS" in libvirt_uri_problem(uri)
    assert libvirt_uri_problem(uri, allow_tcp=True) is None


def test_model_validation_refuses_a_bad_uri(db, settings):
    settings.ALLOW_TCP_HOSTS = False
    host = Host(name="far", libvirt_uri="qemu+tcp://10.0.0.7/system", pool_name="p")
    with pytest.raises(ValidationError) as refused:
        host.full_clean()
    assert "libvirt_uri" in refused.value.message_dict


def test_the_host_service_refuses_before_calling_libvirt(db, fake_hosts):
    with pytest.raises(ValidationError, match="run a program"):
        host_add(name="evil", libvirt_uri="qemu+ext:///system?command=/bin/sh")
    assert not Host.objects.filter(name="evil").exists()
    assert fake_hosts == {}


def test_the_host_command_refuses_a_bad_uri(db):
    with pytest.raises(CommandError, match="run a program"):
        call_command(
            "host", "add", "evil", "qemu+ext:///system?command=/bin/sh", stdout=io.StringIO()
        )


def test_the_admin_refuses_a_bad_uri(client, charlie):
    client.force_login(charlie)
    form = {
        "name": "evil",
        "libvirt_uri": "qemu+ssh://root@host2/system?command=/bin/sh",
        "domain_type": "qemu",
        "pool_name": "p",
        "pool_path": "/nonexistent/p",
        "console_dir": "/nonexistent/c",
        "state": "enabled",
        "memory_mib": 2048,
        "vcpus": 4,
        "disk_gib": 20,
    }
    response = client.post("/admin/vms/host/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "is not allowed" in response.content.decode()
    assert not Host.objects.filter(name="evil").exists()


def test_the_settings_libvirt_uri_is_held_to_the_same_rules(db, settings):
    settings.LIBVIRT_URI = "qemu+ext:///system?command=/bin/sh"
    with pytest.raises(ValidationError, match="run a program"):
        host_ensure_default()
