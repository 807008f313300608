"""Sealing: AES-GCM with named keys, bound to the object it belongs to."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.store.sealing import (
    Sealer,
    SealingError,
    UnknownKeyError,
    generate_key_file,
    generate_key_material,
    identity_aad,
)

AAD = identity_aad("", "secrets", "shop", "db")
KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


def test_round_trip() -> None:
    sealer = Sealer.generate()
    key_id, blob = sealer.seal(b"hunter2", aad=AAD)
    assert key_id == "k1"
    assert b"hunter2" not in blob
    assert sealer.unseal(key_id, blob, aad=AAD) == b"hunter2"


def test_each_seal_uses_a_new_nonce() -> None:
    sealer = Sealer.generate()
    assert sealer.seal(b"same", aad=AAD)[1] != sealer.seal(b"same", aad=AAD)[1]


@pytest.mark.parametrize(
    "other",
    [
        identity_aad("", "secrets", "shop", "db2"),
        identity_aad("", "secrets", "shop2", "db"),
        identity_aad("apps", "secrets", "shop", "db"),
        identity_aad("", "secret", "sshop", "db"),
    ],
    ids=["name", "namespace", "group", "shifted"],
)
def test_another_objects_identity_does_not_unseal(other: bytes) -> None:
    sealer = Sealer.generate()
    key_id, blob = sealer.seal(b"hunter2", aad=AAD)
    with pytest.raises(SealingError, match="failed authentication"):
        sealer.unseal(key_id, blob, aad=other)


def test_tampering_fails() -> None:
    sealer = Sealer.generate()
    key_id, blob = sealer.seal(b"hunter2", aad=AAD)
    for i in (1, 13, len(blob) - 1):
        flipped = bytearray(blob)
        flipped[i] ^= 0x01
        with pytest.raises(SealingError):
            sealer.unseal(key_id, bytes(flipped), aad=AAD)
    with pytest.raises(SealingError, match="malformed"):
        sealer.unseal(key_id, blob[:10], aad=AAD)


def test_rotation_keeps_old_ciphertexts_readable() -> None:
    old = Sealer.from_key_material(f"k1:{KEY_A}\n")
    key_id, blob = old.seal(b"before", aad=AAD)
    rotated = Sealer.from_key_material(f"# newest first\nk2:{KEY_B}\n\nk1:{KEY_A}\n")
    assert rotated.primary_key_id == "k2"
    assert rotated.key_ids == ("k2", "k1")
    assert rotated.unseal(key_id, blob, aad=AAD) == b"before"
    new_id, new_blob = rotated.seal(b"after", aad=AAD)
    assert new_id == "k2"
    with pytest.raises(UnknownKeyError, match="k2"):
        old.unseal(new_id, new_blob, aad=AAD)


def test_a_bare_key_is_k1() -> None:
    sealer = Sealer.from_key_material(KEY_A + "\n")
    assert sealer.key_ids == ("k1",)
    assert sealer.unseal(*Sealer.from_key_material(f"k1:{KEY_A}").seal(b"x", aad=AAD), aad=AAD) == b"x"


@pytest.mark.parametrize(
    "material",
    [
        "",
        "# only a comment\n",
        base64.b64encode(b"short").decode(),
        f"k1:{KEY_A}\nk1:{KEY_B}",
        f"bad id:{KEY_A}",
        "k1:not base64!!" + "A" * 30,
        f"k1:{KEY_A}\n{KEY_B}",
    ],
    ids=["empty", "comment", "short", "duplicate", "bad-id", "not-base64", "missing-id"],
)
def test_bad_key_material_is_refused_without_echoing_it(material: str) -> None:
    with pytest.raises(SealingError) as err:
        Sealer.from_key_material(material)
    assert KEY_A not in str(err.value)
    assert KEY_B not in str(err.value)
    assert "A" * 30 not in str(err.value)


def test_generate_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    generate_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    sealer = Sealer.from_key_file(path)
    assert sealer.key_ids == ("k1",)
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    rotated = generate_key_material("k2") + path.read_text()
    assert Sealer.from_key_material(rotated).key_ids == ("k2", "k1")


@given(
    plaintext=st.binary(max_size=4096),
    identity=st.tuples(
        st.text(max_size=20), st.text(max_size=20), st.text(max_size=20), st.text(max_size=20)
    ),
)
def test_round_trip_property(plaintext: bytes, identity: tuple[str, str, str, str]) -> None:
    sealer = Sealer.from_key_material(f"k9:{KEY_B}\nk1:{KEY_A}")
    aad = identity_aad(*identity)
    key_id, blob = sealer.seal(plaintext, aad=aad)
    assert key_id == "k9"
    assert sealer.unseal(key_id, blob, aad=aad) == plaintext
