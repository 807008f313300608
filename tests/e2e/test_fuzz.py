"""Both servers fuzzed with schemathesis against the OpenAPI v3 documents they serve (issue 9).

The federation (``fedctl up`` over Postgres) and one simulated member cluster are each reached as
kubectl reaches them, over HTTPS with a bearer token, by ``st run`` (``tests/fuzzing.py``): no
answer may be a 5xx, every error must be a ``metav1.Status`` carrying the HTTP status as its code,
and every answer must conform to the schema the server declares for it. Seeded objects make most
operations reach their logic instead of a 404.

``make test`` gives each server :data:`DEFAULT_SECONDS`; ``make fuzz`` runs longer
(``FEDERATION_FUZZ_SECONDS``), with another seed if ``FEDERATION_FUZZ_SEED`` says so. A run is
deterministic by its seed, up to where the time runs out. What it finds becomes a case in
``tests/integration/test_api_bad_input.py``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.sim import ClusterSpec, Simulator
from tests.fuzzing import DEFAULT_SEED, ROOT, Endpoint, FuzzResult, fuzz, kubeconfig_endpoint
from tests.servers import start_federation

pytestmark = pytest.mark.e2e

DEFAULT_SECONDS = 20
SECONDS = int(os.environ.get("FEDERATION_FUZZ_SECONDS", DEFAULT_SECONDS))
SEED = int(os.environ.get("FEDERATION_FUZZ_SEED", DEFAULT_SEED))


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Endpoint]:
    running = start_federation(tmp_path_factory.mktemp("fed"), database_url=database_url, controllers=True)
    yield Endpoint(running.url, running.ca_file, running.admin_token)
    log = running.stop()
    assert "Traceback" not in log, log[-4000:]  # nothing failed unseen (in a stream, say)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    folder = tmp_path_factory.mktemp("sim")
    with Simulator([ClusterSpec("fuzzed", nodes=2, start_delay=0.05)], kubeconfig=folder / "k") as sim:
        yield kubeconfig_endpoint(sim.kubeconfig, "fuzzed", folder / "ca.crt")


def _check(result: FuzzResult) -> None:
    print(f"seed {SEED}, {SECONDS} s: {result.summary()}")
    assert not result.server_errors, f"5xx from {sorted(set(result.server_errors))}\n{result.failures()}"
    assert result.returncode == 0, result.failures()
    assert len(result.covered) == result.operations, "operations never called"
    # The seeds work: reads of the seeded objects succeed, and some writes do too.
    assert result.statuses[200] > result.operations
    assert result.statuses[201] > 0


@pytest.mark.timeout(SECONDS + 240)
def test_the_federation_answers_every_generated_request(federation: Endpoint, tmp_path: Path) -> None:
    result = fuzz(
        federation.url, federation.ca, federation.token, workdir=tmp_path, seconds=SECONDS, seed_value=SEED
    )
    _check(result)


@pytest.mark.timeout(SECONDS + 240)
def test_a_simulated_cluster_answers_every_generated_request(
    simulated: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = fuzz(
        simulated.url, simulated.ca, simulated.token, workdir=tmp_path, seconds=SECONDS, seed_value=SEED
    )
    _check(result)
    # The cluster runs in this process: an error it logged without answering a 5xx shows here.
    unexpected = [r for r in caplog.records if r.levelname == "ERROR"]
    assert not unexpected, [r.getMessage() for r in unexpected]


def test_the_make_fuzz_examples_of_the_docs_pass_their_settings_on() -> None:
    """docs/reliability.md's commands, as ``make -n`` shows them (running them takes minutes)."""
    doc = (ROOT / "docs" / "reliability.md").read_text()
    block = doc.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].split() for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["make", "fuzz"], ["make", "fuzz"]]
    expected = [("300", str(DEFAULT_SEED)), ("60", "7")]
    for command, (seconds, seed) in zip(commands, expected, strict=True):
        shown = subprocess.run(
            ["make", "-n", *command[1:]], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        assert f"FEDERATION_FUZZ_SECONDS={seconds}" in shown
        assert "tests/e2e/test_fuzz.py" in shown
        if seed != str(DEFAULT_SEED):
            assert f"FEDERATION_FUZZ_SEED={seed}" in shown
