"""Secrets on disk: written whole or not at all, and private from the first byte."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from federation.apimachinery import write_atomically


def test_a_new_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_atomically(tmp_path / "admin.token", "secret\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "admin.token").read_text() == "secret\n"
    assert stat.S_IMODE((tmp_path / "admin.token").stat().st_mode) == 0o600


def test_a_public_mode_when_asked_and_bytes_as_given(tmp_path: Path) -> None:
    write_atomically(tmp_path / "ca.crt", b"\x00pem", mode=0o644)
    assert (tmp_path / "ca.crt").read_bytes() == b"\x00pem"
    assert stat.S_IMODE((tmp_path / "ca.crt").stat().st_mode) == 0o644


def test_a_replaced_file_gets_the_mode_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "federation.kubeconfig"
    target.write_text("old")
    target.chmod(0o644)
    write_atomically(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600, "the new file does not inherit a looser mode"


def test_a_failed_write_leaves_what_was_there_and_no_temporary_file(tmp_path: Path) -> None:
    taken = tmp_path / "tls.key"
    taken.mkdir()  # the rename over it fails after the temporary file is written
    (taken / "kept").write_text("old")
    with pytest.raises(IsADirectoryError):
        write_atomically(taken, "new key")
    assert (taken / "kept").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tls.key"]
