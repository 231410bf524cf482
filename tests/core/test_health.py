"""The health check reports each part down and up, with a sentence saying what to do."""

from datetime import timedelta

import pytest
from django.db.utils import ConnectionHandler
from django.utils import timezone
from django_q.tasks import async_task

from core import health
from operations.health import check_worker
from operations.models import WorkerHeartbeat
from tests.conftest import wait_for
from vms.health import check_libvirt
from vms.models import Host


def test_database_up(db):
    assert health.check_database().ok


def test_database_down_says_it_does_not_answer(db):
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "nothing",
                "USER": "nobody",
                "HOST": "127.0.0.1",
                "PORT": "1",
                "OPTIONS": {"connect_timeout": 2},
            }
        }
    )
    check = health.check_database(handler["default"])
    assert not check.ok
    assert check.message.startswith("The database does not answer")


def test_redis_broker_up():
    assert health.check_broker("redis://127.0.0.1:6379/0").ok


def test_redis_broker_down_names_the_setting():
    check = health.check_broker("redis://127.0.0.1:1/0")
    assert not check.ok
    assert "REDIS_URL does not answer" in check.message


def test_database_broker_up(db, settings):
    settings.REDIS_URL = None
    check = health.check_broker()
    assert check.ok
    assert "database queue" in check.message


def test_worker_that_never_reported_is_down(db):
    check = check_worker()
    assert not check.ok
    assert "manage.py worker" in check.message


def test_worker_silent_for_too_long_is_down(db, settings):
    settings.WORKER_HEARTBEAT_MAX_AGE = 180
    WorkerHeartbeat.objects.create(worker="w1", last_seen=timezone.now() - timedelta(minutes=5))
    check = check_worker()
    assert not check.ok
    assert "No worker has reported for 300 s" in check.message


def test_worker_that_reported_recently_is_up(db):
    WorkerHeartbeat.objects.create(worker="w1", last_seen=timezone.now() - timedelta(seconds=10))
    assert check_worker().ok


@pytest.mark.worker
def test_a_running_worker_is_seen_through_the_queue(worker):
    assert not check_worker().ok
    async_task("operations.tasks.heartbeat")
    wait_for(lambda: check_worker().ok, timeout=30, what="a heartbeat from the worker")


@pytest.mark.libvirt
def test_libvirt_up(host):
    check = check_libvirt(host)
    assert check.ok
    assert "answers" in check.message


def test_libvirt_unreachable_says_to_start_libvirtd():
    host = Host(name="far", libvirt_uri="qemu+tcp://127.0.0.1:9/system", pool_name="p")
    check = check_libvirt(host)
    assert not check.ok
    assert "start libvirtd" in check.message


@pytest.mark.libvirt
def test_libvirt_without_its_pool_says_to_bootstrap(host):
    host.pool_name = "no-such-pool"
    check = check_libvirt(host)
    assert not check.ok
    assert "manage.py bootstrap" in check.message


def test_healthz_is_503_naming_the_part_that_is_down(client, db):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["worker"]["ok"] is False


@pytest.mark.libvirt
def test_healthz_is_200_when_everything_is_up(client, host):
    WorkerHeartbeat.objects.create(worker="w1", last_seen=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ok"


def test_healthz_tells_anonymous_callers_only_up_or_down(client, db):
    response = client.get("/healthz")
    body = response.json()
    assert set(body) == {"status", "checks"}
    assert set(body["checks"]) == {"database", "broker", "worker", "libvirt"}
    for name, check in body["checks"].items():
        assert check == {"ok": check["ok"]}, name
    assert "manage.py" not in response.content.decode()


def test_healthz_tells_a_logged_in_customer_only_up_or_down(client, alice):
    client.force_login(alice)
    body = client.get("/healthz").json()
    assert all("message" not in check for check in body["checks"].values())


def test_healthz_gives_staff_the_details(client, charlie):
    client.force_login(charlie)
    body = client.get("/healthz").json()
    assert "manage.py worker" in body["checks"]["worker"]["message"]
    assert body["checks"]["database"]["message"]


@pytest.mark.libvirt
def test_healthz_names_no_version_host_or_process_to_anonymous_callers(client, host):
    WorkerHeartbeat.objects.create(worker="node-7:4242", last_seen=timezone.now())
    text = client.get("/healthz").content.decode()
    assert "libvirt " not in text
    assert "node-7" not in text
    assert "4242" not in text


def test_doctor_keeps_the_details(db):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    with pytest.raises(CommandError):
        call_command("doctor", stdout=out)
    assert "manage.py worker" in out.getvalue()
