"""Wrong passwords lock out one (user name, client address) pair, never a name or an address."""

from django.test import Client

PASSWORD = "correct-horse-battery"


def login(client, username, password):
    return client.post("/login/", {"username": username, "password": password})


def fail_until_locked(client, username, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, username, "wrong")


def test_the_pair_itself_is_locked_out(alice, settings):
    client = Client(REMOTE_ADDR="203.0.113.5")
    fail_until_locked(client, "alice", settings)
    assert login(client, "alice", PASSWORD).status_code == 429


def test_guessing_random_names_from_one_address_locks_out_no_one_else(alice, bob, settings):
    guesser = Client(REMOTE_ADDR="203.0.113.5")
    for number in range(3 * settings.AXES_FAILURE_LIMIT):
        login(guesser, f"random-{number}", "wrong")
    assert login(Client(REMOTE_ADDR="198.51.100.7"), "bob", PASSWORD).status_code == 302
    # Not even the guesser's own address is shut for a name it has not guessed.
    assert login(guesser, "alice", PASSWORD).status_code == 302


def test_a_user_locked_out_at_one_address_logs_in_from_another(alice, settings):
    fail_until_locked(Client(REMOTE_ADDR="203.0.113.5"), "alice", settings)
    assert login(Client(REMOTE_ADDR="198.51.100.7"), "alice", PASSWORD).status_code == 302


def test_behind_a_trusted_proxy_each_client_is_counted_apart(alice, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    attacker = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    fail_until_locked(attacker, "alice", settings)
    assert login(attacker, "alice", PASSWORD).status_code == 429
    owner = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert login(owner, "alice", PASSWORD).status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(alice, settings):
    settings.TRUSTED_PROXIES = []
    for number in range(settings.AXES_FAILURE_LIMIT):
        forged = Client(REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR=f"10.9.9.{number}")
        login(forged, "alice", "wrong")
    again = Client(REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="10.9.9.200")
    assert login(again, "alice", PASSWORD).status_code == 429
