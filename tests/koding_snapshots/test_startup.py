"""The service refuses to start on a bad setting, with a sentence naming the variable."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    environ = dict(os.environ)
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def load_settings(**env: str) -> subprocess.CompletedProcess:
    return run_python(
        "import django, json; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({'debug': s.DEBUG, 'domain': s.LIBVIRT_DOMAIN_TYPE, 'q': s.Q_CLUSTER,"
        " 'engine': s.DATABASES['default']['ENGINE'], 'op': s.OPERATION_TIMEOUT}))",
        DJANGO_SETTINGS_MODULE="koding_snapshots.settings",
        **env,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "perhaps"),
        ("LIBVIRT_DOMAIN_TYPE", "xen"),
        ("DATABASE_URL", "mongodb://localhost/x"),
        ("REDIS_URL", "ftp://localhost"),
        ("OPERATION_TIMEOUT", "soon"),
    ],
)
def test_a_bad_value_stops_the_start_naming_the_variable(variable, value):
    result = load_settings(**{variable: value})
    assert result.returncode != 0
    assert f"{variable} must" in result.stderr


def test_production_mode_requires_a_secret_key():
    result = load_settings(PRODUCTION="1", SECRET_KEY="", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_good_values_are_taken():
    result = load_settings(
        DEBUG="1", LIBVIRT_DOMAIN_TYPE="kvm", DATABASE_URL="postgres://u@h:5432/d"
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["debug"] is True
    assert values["domain"] == "kvm"
    assert values["engine"] == "django.db.backends.postgresql"


def test_redis_url_switches_the_task_queue_to_redis():
    result = load_settings(REDIS_URL="redis://127.0.0.1:6379/3")
    q = json.loads(result.stdout)["q"]
    assert q["redis"] == "redis://127.0.0.1:6379/3"
    assert "orm" not in q


def test_without_redis_the_task_queue_uses_the_database():
    result = load_settings(REDIS_URL="")
    q = json.loads(result.stdout)["q"]
    assert q["orm"] == "default"
    assert "redis" not in q


@pytest.mark.parametrize("operation_timeout", ["60", "1800", "7200"])
def test_a_task_is_killed_before_it_could_be_delivered_again(operation_timeout):
    """timeout outlasts the longest operation; retry (redelivery) comes only after timeout."""
    result = load_settings(OPERATION_TIMEOUT=operation_timeout)
    values = json.loads(result.stdout)
    q = values["q"]
    assert values["op"] < q["timeout"] < q["retry"]
    assert q["max_attempts"] == 1
    assert q["ack_failures"] is True
