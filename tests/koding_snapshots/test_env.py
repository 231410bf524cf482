"""Settings read from the environment: good values parse, bad ones name the variable."""

import pytest

from koding_snapshots.env import (
    ConfigError,
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_redis_url,
    secret_key,
)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("off", False)])
def test_env_bool_reads_common_words(raw, expected):
    assert env_bool("DEBUG", not expected, environ={"DEBUG": raw}) is expected


def test_env_bool_uses_default_when_unset():
    assert env_bool("DEBUG", True, environ={}) is True


def test_env_bool_rejects_other_words_naming_the_variable():
    with pytest.raises(ConfigError, match=r"^DEBUG must be true or false"):
        env_bool("DEBUG", False, environ={"DEBUG": "maybe"})


def test_env_int_rejects_non_numbers():
    with pytest.raises(ConfigError, match=r"^WORKERS must be a whole number, not 'four'"):
        env_int("WORKERS", 4, environ={"WORKERS": "four"})


def test_env_int_enforces_its_range():
    with pytest.raises(ConfigError, match=r"^WORKERS must be at least 1, not 0"):
        env_int("WORKERS", 4, minimum=1, environ={"WORKERS": "0"})


def test_env_choice_lists_the_allowed_values():
    with pytest.raises(ConfigError, match=r"LIBVIRT_DOMAIN_TYPE must be one of 'qemu', 'kvm'"):
        env_choice(
            "LIBVIRT_DOMAIN_TYPE", "qemu", ["qemu", "kvm"], environ={"LIBVIRT_DOMAIN_TYPE": "xen"}
        )


def test_env_list_splits_on_commas():
    environ = {"ALLOWED_HOSTS": "a.example, b.example"}
    assert env_list("ALLOWED_HOSTS", [], environ=environ) == ["a.example", "b.example"]


def test_database_defaults_to_an_sqlite_file(tmp_path):
    config = env_database("DATABASE_URL", tmp_path / "db.sqlite3", environ={})
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "db.sqlite3")


def test_database_reads_a_postgres_url(tmp_path):
    environ = {"DATABASE_URL": "postgres://ks:secret@db.internal:6432/snapshots"}
    config = env_database("DATABASE_URL", tmp_path / "x", environ=environ)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 6432, "snapshots")


def test_database_rejects_other_engines(tmp_path):
    with pytest.raises(ConfigError, match=r"^DATABASE_URL must be a postgres:// or sqlite://"):
        env_database("DATABASE_URL", tmp_path / "x", environ={"DATABASE_URL": "mysql://x/y"})


def test_database_requires_a_database_name(tmp_path):
    with pytest.raises(ConfigError, match=r"^DATABASE_URL must name a database"):
        env_database("DATABASE_URL", tmp_path / "x", environ={"DATABASE_URL": "postgres://h:5432"})


def test_redis_url_is_optional():
    assert env_redis_url("REDIS_URL", environ={}) is None


def test_redis_url_rejects_other_schemes():
    with pytest.raises(ConfigError, match=r"^REDIS_URL must be a redis://"):
        env_redis_url("REDIS_URL", environ={"REDIS_URL": "http://127.0.0.1:6379"})


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = secret_key("SECRET_KEY", production=False, key_file=tmp_path / "k", environ={})
    second = secret_key("SECRET_KEY", production=False, key_file=tmp_path / "k", environ={})
    assert first == second
    assert len(first) >= 50
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


def test_secret_key_is_required_in_production(tmp_path):
    with pytest.raises(ConfigError, match=r"^SECRET_KEY must be set in production"):
        secret_key("SECRET_KEY", production=True, key_file=tmp_path / "k", environ={})


def test_secret_key_from_the_environment_wins(tmp_path):
    key = "k" * 60
    environ = {"SECRET_KEY": key}
    assert (
        secret_key("SECRET_KEY", production=True, key_file=tmp_path / "k", environ=environ) == key
    )
