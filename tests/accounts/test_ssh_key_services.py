"""Adding and deleting SSH keys (`accounts.services`): what is kept, and what is refused."""

import base64
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.models import SshKey
from accounts.selectors import ssh_keys_of
from accounts.services import ssh_key_add, ssh_key_delete
from core.errors import LimitExceeded, NameTaken
from tests.factories import FINGERPRINTS, PUBLIC_KEYS


def test_a_key_is_kept_with_its_type_fingerprint_and_size(alice):
    key = ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])

    key.refresh_from_db()
    assert key.owner == alice
    assert key.title == "Laptop"
    assert key.public_key == PUBLIC_KEYS[0]
    assert key.key_type == "ssh-ed25519"
    assert key.fingerprint == FINGERPRINTS[0]
    assert key.bits == 256


def test_the_key_is_kept_normalized(alice):
    kind, data, comment = PUBLIC_KEYS[0].split()
    key = ssh_key_add(owner=alice, title="", public_key=f"\n {kind}\t{data}  {comment}\n")
    assert key.public_key == PUBLIC_KEYS[0]


def test_the_title_defaults_to_the_comment(alice):
    key = ssh_key_add(owner=alice, title="  ", public_key=PUBLIC_KEYS[0])
    assert key.title == "alice@laptop-1"


def test_a_key_without_comment_or_title_is_refused_on_the_title(alice):
    bare = " ".join(PUBLIC_KEYS[0].split()[:2])
    with pytest.raises(ValidationError) as refused:
        ssh_key_add(owner=alice, title="", public_key=bare)
    assert "Give the key a title" in refused.value.message_dict["title"][0]


def test_a_long_title_is_refused(alice):
    with pytest.raises(ValidationError) as refused:
        ssh_key_add(owner=alice, title="x" * 65, public_key=PUBLIC_KEYS[0])
    assert "64 characters or fewer" in refused.value.message_dict["title"][0]


def test_a_title_with_control_characters_is_refused(alice):
    with pytest.raises(ValidationError) as refused:
        ssh_key_add(owner=alice, title="lap\x07top", public_key=PUBLIC_KEYS[0])
    assert "cannot be shown" in refused.value.message_dict["title"][0]


def test_a_bad_key_is_refused_on_the_key_with_the_reason(alice):
    with pytest.raises(ValidationError) as refused:
        ssh_key_add(owner=alice, title="Old", public_key="ssh-dss AAAAB3NzaC1kc3M=")
    assert refused.value.message_dict["public_key"][0].startswith("DSA keys are no longer")
    assert not SshKey.objects.exists()


def test_the_same_key_twice_is_refused_whatever_its_comment(alice):
    ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])
    again = " ".join(PUBLIC_KEYS[0].split()[:2]) + " another comment"

    with pytest.raises(NameTaken) as refused:
        ssh_key_add(owner=alice, title="Again", public_key=again)

    assert refused.value.message.startswith("You have already added this key, as 'Laptop'")
    assert refused.value.field == "public_key"
    assert SshKey.objects.count() == 1


def test_two_users_may_add_the_same_key(alice, bob):
    ssh_key_add(owner=alice, title="Shared", public_key=PUBLIC_KEYS[0])
    ssh_key_add(owner=bob, title="Shared", public_key=PUBLIC_KEYS[0])
    assert SshKey.objects.count() == 2


def test_keys_beyond_ssh_keys_max_are_refused(alice, bob, settings):
    settings.SSH_KEYS_MAX = 2
    ssh_key_add(owner=alice, title="One", public_key=PUBLIC_KEYS[0])
    ssh_key_add(owner=alice, title="Two", public_key=PUBLIC_KEYS[1])

    with pytest.raises(LimitExceeded) as refused:
        ssh_key_add(owner=alice, title="Three", public_key=PUBLIC_KEYS[2])

    assert refused.value.message == (
        "You can keep up to 2 SSH keys; delete one you no longer use to add another."
    )
    ssh_key_add(owner=bob, title="Bob's", public_key=PUBLIC_KEYS[2])  # the limit is per user


def test_a_deleted_key_is_gone_and_may_be_added_again(alice):
    key = ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])
    ssh_key_delete(key=key)
    assert not SshKey.objects.exists()
    ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])


def test_a_user_lists_only_their_own_keys_newest_first(alice, bob):
    first = ssh_key_add(owner=alice, title="One", public_key=PUBLIC_KEYS[0])
    second = ssh_key_add(owner=alice, title="Two", public_key=PUBLIC_KEYS[1])
    ssh_key_add(owner=bob, title="Bob's", public_key=PUBLIC_KEYS[2])

    assert list(ssh_keys_of(alice)) == [second, first]


def made_up_key(n: int) -> str:
    """A well-formed Ed25519 public key line (its point is not checked, as OpenSSH does not)."""
    parts = [b"ssh-ed25519", bytes([n]) * 32]
    blob = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} key-{n}"


def in_parallel(owner, keys: list[str]) -> list[str]:
    """Add `keys` to `owner`'s from as many threads at once; what each one came to."""
    barrier = threading.Barrier(len(keys))
    outcomes = []

    def add(public_key):
        barrier.wait()
        try:
            ssh_key_add(owner=owner, title="", public_key=public_key)
            outcomes.append("added")
        except LimitExceeded:
            outcomes.append("limit")
        except NameTaken:
            outcomes.append("taken")
        finally:
            connection.close()

    threads = [threading.Thread(target=add, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_parallel_adds_never_exceeds_the_limit(plans, alice, settings):
    settings.SSH_KEYS_MAX = 3
    outcomes = in_parallel(alice, [made_up_key(n) for n in range(6)])
    assert outcomes == ["added"] * 3 + ["limit"] * 3
    assert SshKey.objects.filter(owner=alice).count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_same_key_added_in_parallel_is_kept_once(plans, alice):
    outcomes = in_parallel(alice, [PUBLIC_KEYS[0]] * 4)
    assert outcomes == ["added"] + ["taken"] * 3
    assert SshKey.objects.filter(owner=alice).count() == 1
