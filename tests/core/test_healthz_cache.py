"""/healthz answers anonymous probes from a result a few seconds old and writes nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import health
from core.health import Check
from tests.factories import host_row

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def counted_checks(monkeypatch):
    """Replace the checks with one that counts how often it runs."""
    calls = []

    def counted():
        calls.append(1)
        return Check("counted", True, "answers")

    monkeypatch.setattr(health, "checks", lambda: [counted])
    return calls


def test_anonymous_calls_within_the_window_make_one_check(client, db, settings, counted_checks):
    settings.HEALTHZ_CACHE_SECONDS = 5
    for _ in range(10):
        assert client.get("/healthz").status_code == 200
    assert len(counted_checks) == 1


def test_anonymous_calls_after_the_window_check_again(client, db, settings, counted_checks):
    settings.HEALTHZ_CACHE_SECONDS = 0
    client.get("/healthz")
    client.get("/healthz")
    assert len(counted_checks) == 2


def test_staff_get_a_fresh_check_every_time(client, charlie, settings, counted_checks):
    settings.HEALTHZ_CACHE_SECONDS = 5
    client.get("/healthz")
    client.force_login(charlie)
    client.get("/healthz")
    client.get("/healthz")
    assert len(counted_checks) == 3


def test_anonymous_calls_ask_each_host_once_per_window(client, db, settings, fake_hosts):
    settings.HEALTHZ_CACHE_SECONDS = 5
    host_row(name="b", libvirt_uri="test:///default")
    for _ in range(5):
        client.get("/healthz")
    assert list(fake_hosts) == ["test:///default"]
    assert fake_hosts["test:///default"].calls.count("version") == 1


def test_anonymous_calls_write_no_rows(client, db, settings):
    settings.HEALTHZ_CACHE_SECONDS = 5
    host = host_row(name="b", libvirt_uri="test:///default")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            client.get("/healthz")
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]
    assert writes == []
    host.refresh_from_db()
    assert host.checked_at is None  # the scheduled host check records, not the probe
