"""Reading settings from the environment.

Each helper returns a typed value or raises `ConfigError` with a sentence that names the variable,
so a bad value stops the service at start instead of surfacing as a strange failure later.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(ImproperlyConfigured):
    """A setting read from the environment has a value the service cannot use."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no, on/off), not {value!r}.")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}.")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, not {number}.")
    return number


def env_choice(
    name: str, default: str, choices: Sequence[str], environ: Mapping[str, str] | None = None
) -> str:
    value = env_str(name, default, environ)
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {allowed}, not {value!r}.")
    return value


def env_list(name: str, default: Sequence[str], environ: Mapping[str, str] | None = None) -> list:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items and default:
        raise ConfigError(f"{name} must be a comma-separated list with at least one entry.")
    return items


def env_database(name: str, default_sqlite: Path, environ: Mapping[str, str] | None = None):
    """A Django DATABASES entry from a URL: SQLite (the default) or PostgreSQL."""
    url = _raw(name, environ)
    if not url:
        return sqlite_database(default_sqlite)
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        try:
            path = dj_database_url.parse(url)["NAME"]
        except ValueError as exc:
            raise ConfigError(f"{name} is not a usable SQLite URL: {exc}") from None
        return sqlite_database(Path(path))
    if scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ConfigError(
            f"{name} must be a postgres:// or sqlite:// URL, not one with scheme {scheme!r}."
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ConfigError(f"{name} is not a usable PostgreSQL URL: {exc}") from None
    if not config.get("NAME"):
        raise ConfigError(f"{name} must name a database, as in postgres://user@host:5432/dbname.")
    return config


def sqlite_database(path: Path) -> dict:
    """SQLite tuned for one web and one worker process writing at the same time."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            # IMMEDIATE takes the write lock when a transaction starts, so two writers queue
            # behind each other (up to `timeout` seconds) instead of failing with "locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def env_redis_url(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    url = _raw(name, environ)
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name} must be a redis://, rediss:// or unix:// URL, not {url!r}.")
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ConfigError(f"{name} must name a host, as in redis://127.0.0.1:6379/0.")
    return url


def secret_key(
    name: str, *, production: bool, key_file: Path, environ: Mapping[str, str] | None = None
) -> str:
    """The secret key: from the environment, or (outside production) made once and kept."""
    value = _raw(name, environ)
    if value:
        if production and len(value) < 50:
            raise ConfigError(f"{name} must be at least 50 characters long in production.")
        return value
    if production:
        raise ConfigError(f"{name} must be set in production (PRODUCTION=1).")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the final name, then linked into place: two processes starting at once
        # (web and worker) both end up reading the one key that won. Readable by its owner only:
        # the key signs sessions and password-reset links.
        tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, key_file)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return key_file.read_text().strip()


def env_ipv4_subnet(
    name: str, default: str, environ: Mapping[str, str] | None = None
) -> ipaddress.IPv4Network:
    """A private IPv4 subnet with room for guests (a /16 to a /28)."""
    value = env_str(name, default, environ)
    try:
        subnet = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise ConfigError(
            f"{name} must be an IPv4 subnet such as 10.213.0.0/16, not {value!r}."
        ) from None
    if not subnet.is_private or not 16 <= subnet.prefixlen <= 28:
        raise ConfigError(f"{name} must be a private subnet from /16 to /28, not {value!r}.")
    return subnet


def env_networks(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list of addresses or networks (10.0.0.1, 10.0.0.0/8, ::1), empty when
    unset; each is checked here and returned in its normal spelling."""
    import ipaddress

    networks = []
    for item in env_list(name, [], environ):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{name} must list addresses or networks such as 10.0.0.1 or 10.0.0.0/8, "
                f"not {item!r}."
            ) from None
    return networks


def env_rate(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """A rate in the API throttles' format: a count, a slash and a period ("10/hour")."""
    import re

    value = env_str(name, default, environ)
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ConfigError(
            f"{name} must be a count per second, minute, hour or day, such as 10/hour, "
            f"not {value!r}."
        )
    return value
