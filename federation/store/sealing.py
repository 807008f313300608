"""Encryption at rest for Secret data and cluster credentials (AES-256-GCM).

A :class:`Sealer` knows one or more 256-bit keys, each with an id; the first is the primary and
seals every new value, the others only unseal what they sealed before. The key id travels with each
ciphertext (a column beside it), so keys rotate by putting a new key first in the key file: old rows
stay readable and are resealed with the new key the next time they are written.

Guarantees:

* Each ``seal`` uses a fresh random 96-bit nonce; the blob is ``version byte || nonce || ciphertext
  || tag``.
* The caller's associated data (for objects, their identity: group/plural/namespace/name, see
  :func:`identity_aad`) is authenticated, so a ciphertext copied onto another row does not unseal.
* Tampering, a wrong key or wrong associated data raise :class:`SealingError`; an unknown key id
  raises :class:`UnknownKeyError`. No message ever contains key material or plaintext.

Where several processes share a database, rotate in two steps: first add the new key as a second
line everywhere, then, once every process has it, move it first. A process that meets a key id it
does not hold cannot read those values (and its watches wait at that change).

Key file format: one key per line, ``<key id>:<base64 of 32 bytes>``, the first line the primary;
blank lines and ``#`` comments are ignored. A file holding a single bare base64 key means key id
``k1``. :func:`generate_key_file` writes a new file with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_FORMAT = b"\x01"
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_KEY_ID = "k1"


class SealingError(Exception):
    """A value could not be sealed or unsealed (bad key material, tampering, wrong context)."""


class UnknownKeyError(SealingError):
    """The ciphertext names a key id this sealer does not hold."""


def identity_aad(group: str, plural: str, namespace: str, name: str) -> bytes:
    """Associated data binding a ciphertext to one object (unambiguous for any strings)."""
    return json.dumps(["federation/v1", group, plural, namespace, name], separators=(",", ":")).encode()


class Sealer:
    """AES-GCM with named keys; the first key given is the primary."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        primary: str | None = None
        for key_id, key in keys:
            if not _KEY_ID.match(key_id):
                raise SealingError(f"invalid key id {key_id!r}: use letters, digits, '_', '.', '-'")
            if len(key) != KEY_BYTES:
                raise SealingError(f"key {key_id!r} must be {KEY_BYTES} bytes, not {len(key)}")
            if key_id in self._ciphers:
                raise SealingError(f"key id {key_id!r} is given twice")
            self._ciphers[key_id] = AESGCM(key)
            primary = primary or key_id
        if primary is None:
            raise SealingError("no key given")
        self._primary = primary

    @classmethod
    def from_key_material(cls, text: str) -> Sealer:
        """Parse the key file format (see the module docstring)."""
        lines = [
            (number, line.strip())
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.strip().startswith("#")
        ]
        if len(lines) == 1 and ":" not in lines[0][1]:
            return cls([(DEFAULT_KEY_ID, _decode_key(lines[0][1], where="the key"))])
        keys: list[tuple[str, bytes]] = []
        for number, line in lines:
            key_id, sep, encoded = line.partition(":")
            if not sep:
                raise SealingError(f"line {number}: expected '<key id>:<base64 key>'")
            keys.append((key_id.strip(), _decode_key(encoded.strip(), where=f"line {number}")))
        return cls(keys)

    @classmethod
    def from_key_file(cls, path: Path) -> Sealer:
        return cls.from_key_material(Path(path).read_text(encoding="ascii"))

    @classmethod
    def generate(cls, key_id: str = DEFAULT_KEY_ID) -> Sealer:
        """A sealer with one new random key (for tests and throw-away demos)."""
        return cls([(key_id, AESGCM.generate_key(bit_length=KEY_BYTES * 8))])

    @property
    def primary_key_id(self) -> str:
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def seal(self, plaintext: bytes, *, aad: bytes) -> tuple[str, bytes]:
        """Encrypt with the primary key; returns (key id, blob)."""
        nonce = os.urandom(NONCE_BYTES)
        blob = self._ciphers[self._primary].encrypt(nonce, plaintext, aad)
        return self._primary, _FORMAT + nonce + blob

    def unseal(self, key_id: str, blob: bytes, *, aad: bytes) -> bytes:
        """Decrypt a blob sealed with key ``key_id`` and the same associated data."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(f"no key with id {key_id!r} is configured; add it to the key file")
        blob = bytes(blob)
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != _FORMAT:
            raise SealingError(f"sealed value (key {key_id!r}) is malformed")
        try:
            return cipher.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
        except InvalidTag:
            raise SealingError(
                f"sealed value (key {key_id!r}) failed authentication: tampered, or sealed for another object"
            ) from None


def _decode_key(encoded: str, *, where: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SealingError(f"{where}: the key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise SealingError(f"{where}: the key must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def generate_key_material(key_id: str = DEFAULT_KEY_ID) -> str:
    """One key file line (``<key id>:<base64>``) with a new random key."""
    if not _KEY_ID.match(key_id):
        raise SealingError(f"invalid key id {key_id!r}: use letters, digits, '_', '.', '-'")
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}\n"


def generate_key_file(path: Path, *, key_id: str = DEFAULT_KEY_ID) -> None:
    """Write a new key file at ``path`` readable by its owner only; refuses to overwrite one.

    To rotate, put a newly generated line first in the existing file and keep the old lines.
    """
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(generate_key_material(key_id))
