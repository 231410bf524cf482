"""OpenSSH public keys as people paste them: one line `type base64 [comment]`, read and checked.

Pure Python, no Django and no `ssh-keygen`: the text comes from anyone with an account, so it is
read as hostile. The key's data (its blob) is parsed field by field as RFC 4253 and OpenSSH lay
it out, and the fingerprint is the one `ssh-keygen -l` prints (SHA256 of the blob, base64 without
padding), so a person can compare it with their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

MAX_BYTES = 16 * 1024
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 16384  # what OpenSSH reads

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
ECDSA_P256 = "ecdsa-sha2-nistp256"
ECDSA_P384 = "ecdsa-sha2-nistp384"
ECDSA_P521 = "ecdsa-sha2-nistp521"
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA_P256 = "sk-ecdsa-sha2-nistp256@openssh.com"
KEY_TYPES = [ED25519, ECDSA_P256, ECDSA_P384, ECDSA_P521, RSA, SK_ED25519, SK_ECDSA_P256]

# The NIST curves: (name in the blob, prime p, coefficient b, bytes of a coordinate); a = -3.
_CURVES = {
    ECDSA_P256: (
        "nistp256",
        2**256 - 2**224 + 2**192 + 2**96 - 1,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        32,
    ),
    ECDSA_P384: (
        "nistp384",
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        48,
    ),
    ECDSA_P521: (
        "nistp521",
        2**521 - 1,
        0x0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
        66,
    ),
}
_CURVES[SK_ECDSA_P256] = _CURVES[ECDSA_P256]

_BLANKS = re.compile(r"[ \t]+")

COPY_AGAIN = "copy the whole line of the .pub file again."


class SshKeyError(ValueError):
    """The text is not a public key this service takes; the message says why, in a sentence."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class PublicKey:
    """A public key that passed every check."""

    key_type: str
    blob: bytes
    comment: str
    bits: int

    @property
    def text(self) -> str:
        """The key as one normalized line: `type base64 [comment]`."""
        line = f"{self.key_type} {base64.b64encode(self.blob).decode()}"
        return f"{line} {self.comment}" if self.comment else line

    @property
    def fingerprint(self) -> str:
        """As `ssh-keygen -l` prints it: `SHA256:` and the unpadded base64 of the blob's hash."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"


def parse_public_key(text: str) -> PublicKey:
    """The public key in `text`, or `SshKeyError` saying why it is refused."""
    if not isinstance(text, str):
        raise SshKeyError("Paste the public key as text.")
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise SshKeyError(
            "That is longer than any public key (16 KiB at most); paste the contents of the "
            ".pub file."
        )
    text = text.strip()
    if not text:
        raise SshKeyError(
            "Paste a public key: the contents of a .pub file, such as ~/.ssh/id_ed25519.pub."
        )
    if "-----BEGIN" in text or "PuTTY-User-Key-File" in text:
        raise SshKeyError(
            "That is a private key: keep it secret (and make a new one if you shared it). "
            "Paste the public key instead, the .pub file beside it."
        )
    if "BEGIN SSH2 PUBLIC KEY" in text:
        raise SshKeyError(
            "That key is in the SSH2 format; paste it as OpenSSH writes it, which "
            "ssh-keygen -i -f <file> prints."
        )
    if "\n" in text or "\r" in text:
        raise SshKeyError("Paste one key, on one line; add several keys one at a time.")
    fields = _BLANKS.split(text, maxsplit=2)
    key_type = fields[0]
    if key_type not in KEY_TYPES:
        raise SshKeyError(_unknown_type(text))
    if len(fields) < 2:
        raise SshKeyError(f"The key's data is missing after {key_type}; {COPY_AGAIN}")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise SshKeyError(f"The key's data is not valid base64; {COPY_AGAIN}") from None
    bits = _parse_blob(key_type, blob)
    comment = "".join(ch for ch in fields[2] if ch.isprintable()).strip() if len(fields) > 2 else ""
    return PublicKey(key_type=key_type, blob=blob, comment=comment, bits=bits)


def _unknown_type(text: str) -> str:
    words = _BLANKS.split(text)
    first = words[0]
    if first == "ssh-dss":
        return (
            "DSA keys are no longer accepted by OpenSSH; make a new key with "
            "ssh-keygen -t ed25519 and paste its .pub file."
        )
    if "=" in first or "," in first or any(word in KEY_TYPES for word in words[1:]):
        return (
            "Paste the key alone: options in front of it (such as command= or from= in "
            "authorized_keys) are not taken."
        )
    return (
        f"{_shown(first)!r} is not a key type taken here; use an Ed25519, ECDSA or RSA key "
        "(its line begins with ssh-ed25519, ecdsa-sha2-…, ssh-rsa, or sk-… for a security key)."
    )


def _shown(value: str) -> str:
    """A piece of the pasted text, short and printable, to quote in a message."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in value[:40])
    return shown + ("…" if len(value) > 40 else "")


class _Reader:
    """The SSH wire format: uint32 lengths in front of strings and integers."""

    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def string(self) -> bytes:
        if len(self.data) - self.offset < 4:
            raise SshKeyError(f"The key's data is cut short; {COPY_AGAIN}")
        length = int.from_bytes(self.data[self.offset : self.offset + 4], "big")
        start = self.offset + 4
        if length > len(self.data) - start:
            raise SshKeyError(f"The key's data is cut short; {COPY_AGAIN}")
        self.offset = start + length
        return self.data[start : self.offset]

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise SshKeyError(f"The key's data holds a negative number; {COPY_AGAIN}")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.offset != len(self.data):
            raise SshKeyError(f"The key's data goes on after the key; {COPY_AGAIN}")


def _parse_blob(key_type: str, blob: bytes) -> int:
    """Check the blob field by field; return the key's size in bits as `ssh-keygen -l` says."""
    reader = _Reader(blob)
    inner = reader.string()
    if inner != key_type.encode():
        shown = _shown(inner.decode("ascii", errors="replace"))
        raise SshKeyError(
            f"The key's data is of type {shown!r}, not {key_type} as its line says; {COPY_AGAIN}"
        )
    if key_type in (ED25519, SK_ED25519):
        if len(reader.string()) != 32:
            raise SshKeyError(f"An Ed25519 key is 32 bytes and this one is not; {COPY_AGAIN}")
        bits = 256
    elif key_type == RSA:
        bits = _rsa_bits(e=reader.mpint(), n=reader.mpint())
    else:
        bits = _ecdsa_bits(key_type, curve=reader.string(), point=reader.string())
    if key_type.startswith("sk-"):
        reader.string()  # the application, "ssh:" for OpenSSH's own security keys
    reader.end()
    return bits


def _rsa_bits(*, e: int, n: int) -> int:
    bits = n.bit_length()
    if e < 3 or e % 2 == 0 or n % 2 == 0:
        raise SshKeyError(f"The key's data is not a valid RSA key; {COPY_AGAIN}")
    if bits < RSA_MIN_BITS:
        raise SshKeyError(
            f"RSA keys need at least {RSA_MIN_BITS} bits and this one has {bits}; make a new "
            "key with ssh-keygen -t ed25519 (or -t rsa -b 4096)."
        )
    if bits > RSA_MAX_BITS:
        raise SshKeyError(f"RSA keys of more than {RSA_MAX_BITS} bits are not taken by OpenSSH.")
    return bits


def _ecdsa_bits(key_type: str, *, curve: bytes, point: bytes) -> int:
    name, p, b, size = _CURVES[key_type]
    if curve != name.encode():
        raise SshKeyError(
            f"The key's data names another curve than {name}, which its type says; {COPY_AGAIN}"
        )
    if len(point) != 1 + 2 * size or point[0] != 4:
        raise SshKeyError(f"The key's data is not a point on {name}; {COPY_AGAIN}")
    x = int.from_bytes(point[1 : 1 + size], "big")
    y = int.from_bytes(point[1 + size :], "big")
    if x >= p or y >= p or (y * y - (x * x * x - 3 * x + b)) % p != 0:
        raise SshKeyError(f"The key's data is not a point on {name}; {COPY_AGAIN}")
    return {"nistp256": 256, "nistp384": 384, "nistp521": 521}[name]
