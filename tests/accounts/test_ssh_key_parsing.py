"""Reading a pasted public key (`accounts.ssh_keys`): the types taken, with the fingerprint and size
`ssh-keygen -l` gives, and every refusal with its reason. Keys are made by Debian's ssh-keygen."""

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.ssh_keys import KEY_TYPES, SshKeyError, parse_public_key
from tests.factories import FINGERPRINTS, PUBLIC_KEYS

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def keygen(tmp_path: Path, *args: str, comment: str = "alice@laptop") -> Path:
    path = tmp_path / "key"
    subprocess.run(
        ["ssh-keygen", "-q", "-N", "", "-C", comment, "-f", str(path), *args], check=True
    )
    return path.with_suffix(".pub")


def what_ssh_keygen_says(pub: Path) -> tuple[int, str]:
    """(bits, fingerprint) as `ssh-keygen -lf` prints them."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True
    ).stdout
    bits, fingerprint = out.split()[:2]
    return int(bits), fingerprint


def string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def blob_of(line: str) -> bytes:
    return base64.b64decode(line.split()[1])


def line_of(key_type: str, blob: bytes, comment: str = "") -> str:
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}".strip()


def fields_of(blob: bytes) -> list[bytes]:
    fields, offset = [], 0
    while offset < len(blob):
        length = int.from_bytes(blob[offset : offset + 4], "big")
        fields.append(blob[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return fields


ED25519 = PUBLIC_KEYS[0]


@pytest.mark.parametrize(
    ("args", "key_type"),
    [
        (["-t", "ed25519"], "ssh-ed25519"),
        (["-t", "ecdsa", "-b", "256"], "ecdsa-sha2-nistp256"),
        (["-t", "ecdsa", "-b", "384"], "ecdsa-sha2-nistp384"),
        (["-t", "ecdsa", "-b", "521"], "ecdsa-sha2-nistp521"),
        (["-t", "rsa", "-b", "2048"], "ssh-rsa"),
        (["-t", "rsa", "-b", "3072"], "ssh-rsa"),
    ],
    ids=["ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa-2048", "rsa-3072"],
)
def test_a_key_gets_the_fingerprint_and_size_ssh_keygen_prints(tmp_path, args, key_type):
    pub = keygen(tmp_path, *args)

    key = parse_public_key(pub.read_text())

    assert key.key_type == key_type
    assert (key.bits, key.fingerprint) == what_ssh_keygen_says(pub)
    assert key.text == pub.read_text().strip()


# Security keys cannot be made without the hardware: their public halves are built as OpenSSH
# lays them out (RFC 4253 strings), around an ordinary key's point, and ssh-keygen reads them.
def test_a_security_key_on_ed25519_gets_the_fingerprint_ssh_keygen_prints(tmp_path):
    _type, point = fields_of(blob_of(ED25519))
    blob = string(b"sk-ssh-ed25519@openssh.com") + string(point) + string(b"ssh:")
    pub = tmp_path / "sk.pub"
    pub.write_text(line_of("sk-ssh-ed25519@openssh.com", blob, "alice@yubikey") + "\n")

    key = parse_public_key(pub.read_text())

    assert key.key_type == "sk-ssh-ed25519@openssh.com"
    assert (key.bits, key.fingerprint) == what_ssh_keygen_says(pub)


def test_a_security_key_on_ecdsa_gets_the_fingerprint_ssh_keygen_prints(tmp_path):
    _type, curve, point = fields_of(blob_of(keygen(tmp_path, "-t", "ecdsa").read_text()))
    sk_type = b"sk-ecdsa-sha2-nistp256@openssh.com"
    blob = string(sk_type) + string(curve) + string(point) + string(b"ssh:")
    pub = tmp_path / "sk.pub"
    pub.write_text(line_of(sk_type.decode(), blob, "alice@yubikey") + "\n")

    key = parse_public_key(pub.read_text())

    assert key.key_type == sk_type.decode()
    assert (key.bits, key.fingerprint) == what_ssh_keygen_says(pub)


def test_the_fingerprint_is_sha256_of_the_key_data_in_unpadded_base64():
    assert parse_public_key(PUBLIC_KEYS[1]).fingerprint == FINGERPRINTS[1]


def test_the_comment_is_kept_and_the_line_normalized():
    data = ED25519.split()[1]
    key = parse_public_key(f"  ssh-ed25519\t{data}   alice at  home \n")
    assert key.comment == "alice at  home"
    assert key.text == f"ssh-ed25519 {data} alice at  home"


def test_a_key_without_a_comment_is_taken():
    key = parse_public_key(" ".join(ED25519.split()[:2]))
    assert key.comment == ""
    assert key.text == " ".join(ED25519.split()[:2])


def test_only_printable_characters_of_the_comment_are_kept():
    data = ED25519.split()[1]
    key = parse_public_key(f"ssh-ed25519 {data} alice\x1b[31m@\x00laptop\u200b")
    assert key.comment == "alice[31m@laptop"


def refusal(text) -> str:
    with pytest.raises(SshKeyError) as refused:
        parse_public_key(text)
    return refused.value.message


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_an_empty_key_is_refused(text):
    assert refusal(text).startswith("Paste a public key")


def test_several_lines_are_refused():
    assert "one key, on one line" in refusal(PUBLIC_KEYS[0] + "\n" + PUBLIC_KEYS[1])


@pytest.mark.parametrize(
    "header", ["OPENSSH PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"]
)
def test_a_private_key_is_refused(header):
    text = f"-----BEGIN {header}-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END {header}-----\n"
    assert "That is a private key" in refusal(text)


def test_a_putty_private_key_is_refused():
    text = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: alice\n"
    assert "That is a private key" in refusal(text)


def test_a_key_in_the_ssh2_format_is_refused_saying_how_to_convert_it():
    data = ED25519.split()[1]
    text = (
        f'---- BEGIN SSH2 PUBLIC KEY ----\nComment: "alice"\n{data}\n---- END SSH2 PUBLIC KEY ----'
    )
    assert "ssh-keygen -i -f" in refusal(text)


@pytest.mark.parametrize(
    "options",
    ['command="echo hi"', "no-pty", 'restrict,from="10.0.0.0/8"', "environment=X=1", "restrict"],
)
def test_authorized_keys_options_before_the_type_are_refused(options):
    assert "options in front of it" in refusal(f"{options} {ED25519}")


def test_an_unknown_type_is_refused():
    assert "'ssh-foo' is not a key type taken here" in refusal("ssh-foo AAAAB3NzaC1yc2E= x")


def test_a_certificate_is_refused_as_an_unknown_type():
    text = "ssh-ed25519-cert-v01@openssh.com AAAA x"
    assert "is not a key type taken here" in refusal(text)


def test_a_dsa_key_is_refused():
    blob = string(b"ssh-dss") + string(b"\x01" * 128) * 4
    assert refusal(line_of("ssh-dss", blob)).startswith(
        "DSA keys are no longer accepted by OpenSSH"
    )


def test_a_type_without_data_is_refused():
    assert "data is missing" in refusal("ssh-ed25519")


@pytest.mark.parametrize("data", ["AAAA!!!!", "AAAAC3NzaC1lZDI1NTE5AAAAI", "not base64 at all"])
def test_bad_base64_is_refused(data):
    assert "not valid base64" in refusal(f"ssh-ed25519 {data}")


def test_data_of_another_type_than_the_line_says_is_refused():
    reason = refusal(line_of("ssh-rsa", blob_of(ED25519)))
    assert "of type 'ssh-ed25519', not ssh-rsa" in reason


@pytest.mark.parametrize("cut", [1, 10, 33, 40])
def test_truncated_data_is_refused(cut):
    blob = blob_of(ED25519)
    assert "cut short" in refusal(line_of("ssh-ed25519", blob[:-cut]))


def test_data_beyond_the_key_is_refused():
    assert "goes on after the key" in refusal(line_of("ssh-ed25519", blob_of(ED25519) + b"\0"))


def test_an_ed25519_key_of_the_wrong_length_is_refused():
    blob = string(b"ssh-ed25519") + string(b"\x01" * 31)
    assert "32 bytes" in refusal(line_of("ssh-ed25519", blob))


def test_an_ecdsa_point_off_its_curve_is_refused(tmp_path):
    _type, curve, point = fields_of(blob_of(keygen(tmp_path, "-t", "ecdsa").read_text()))
    moved = point[:-1] + bytes([point[-1] ^ 1])
    blob = string(b"ecdsa-sha2-nistp256") + string(curve) + string(moved)
    assert "not a point on nistp256" in refusal(line_of("ecdsa-sha2-nistp256", blob))


def test_an_ecdsa_key_naming_another_curve_is_refused(tmp_path):
    _type, _curve, point = fields_of(blob_of(keygen(tmp_path, "-t", "ecdsa").read_text()))
    blob = string(b"ecdsa-sha2-nistp256") + string(b"nistp384") + string(point)
    assert "names another curve" in refusal(line_of("ecdsa-sha2-nistp256", blob))


def test_an_rsa_key_under_2048_bits_is_refused(tmp_path):
    pub = keygen(tmp_path, "-t", "rsa", "-b", "1024")
    assert "at least 2048 bits and this one has 1024" in refusal(pub.read_text())


def test_an_rsa_key_with_a_negative_modulus_is_refused():
    blob = string(b"ssh-rsa") + string(b"\x01\x00\x01") + string(b"\xff" * 256)
    assert "negative number" in refusal(line_of("ssh-rsa", blob))


def test_text_over_16_kib_is_refused():
    assert "16 KiB" in refusal("ssh-ed25519 " + "A" * 16 * 1024)


def test_text_that_is_not_a_string_is_refused():
    assert "as text" in refusal(None)


@given(st.sampled_from(KEY_TYPES), st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_any_data_behind_a_known_type_is_a_key_or_a_reason(key_type, data):
    try:
        parse_public_key(line_of(key_type, string(key_type.encode()) + data))
    except SshKeyError as exc:
        assert exc.message.endswith(".")


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_is_a_key_or_a_reason(text):
    try:
        parse_public_key(text)
    except SshKeyError as exc:
        assert exc.message.endswith(".")
