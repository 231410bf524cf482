"""The client's address: the connection's own, unless a trusted proxy forwarded the request."""

from django.test import RequestFactory

from core.client_address import client_address


def request(remote="203.0.113.5", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert client_address(request("127.0.0.1", "198.51.100.7")) == "127.0.0.1"


def test_a_trusted_proxy_gives_the_last_hop_it_did_not_add(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]
    # The client wrote the first entry itself; 198.51.100.7 is what the first trusted proxy saw.
    found = client_address(request("127.0.0.1", "1.2.3.4, 198.51.100.7, 10.1.2.3"))
    assert found == "198.51.100.7"


def test_a_request_not_from_a_trusted_proxy_keeps_its_own_address(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(request("203.0.113.5", "198.51.100.7")) == "203.0.113.5"


def test_an_unreadable_hop_stops_at_the_last_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]
    assert client_address(request("127.0.0.1", "198.51.100.7, junk, 10.1.2.3")) == "10.1.2.3"


def test_a_trusted_proxy_without_the_header_is_the_client(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert client_address(request("127.0.0.1")) == "127.0.0.1"


def test_ports_and_mapped_addresses_are_read_as_the_address(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert client_address(request("127.0.0.1", "198.51.100.7:5555")) == "198.51.100.7"
    assert client_address(request("::ffff:203.0.113.5")) == "203.0.113.5"


def test_the_api_throttle_counts_anonymous_requests_by_the_same_address(settings):
    from core.api.common import MutationThrottle

    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert MutationThrottle().get_ident(request("127.0.0.1", "198.51.100.7")) == "198.51.100.7"


def test_trusted_proxies_that_are_not_addresses_stop_the_service():
    import pytest

    from koding_snapshots.env import ConfigError, env_networks

    assert env_networks("TRUSTED_PROXIES", {"TRUSTED_PROXIES": "10.0.0.1, 10.0.0.0/8"}) == [
        "10.0.0.1/32",
        "10.0.0.0/8",
    ]
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES must list addresses"):
        env_networks("TRUSTED_PROXIES", {"TRUSTED_PROXIES": "proxy.example.com"})
