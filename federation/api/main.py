"""``federation-apiserver``: the API server alone, for deployments (migrations are a separate step)."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from federation.api.runtime import Paths, run
from federation.settings import DatabaseSettings, SecuritySettings, ServerSettings, describe_error

PROG = "federation-apiserver"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """No options: everything is an environment variable. ``--help`` says which, and starts nothing."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Serve the federation's Kubernetes-shaped API over the federation's Postgres, until SIGTERM "
            "or SIGINT. Configured by environment variables: FEDERATION_DATABASE_URL, "
            "FEDERATION_ENCRYPTION_KEY or FEDERATION_ENCRYPTION_KEY_FILE, FEDERATION_BOOTSTRAP_TOKEN, "
            "FEDERATION_LISTEN_ADDRESS and FEDERATION_PORT, FEDERATION_TLS_CERT_FILE and "
            "FEDERATION_TLS_KEY_FILE (or FEDERATION_INSECURE_HTTP on loopback only), "
            "FEDERATION_METRICS_OPEN, FEDERATION_WORKERS (docs/operations.md). It refuses a database "
            "whose schema is not current: run `fedctl db upgrade` first."
        ),
        epilog="Example: FEDERATION_DATABASE_URL=postgresql://fed@db/fed "
        "FEDERATION_ENCRYPTION_KEY_FILE=/etc/federation/encryption.key federation-apiserver",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parse_args(argv)
    try:
        db = DatabaseSettings()
        server_settings = ServerSettings()
        security = SecuritySettings()
    except ValidationError as err:
        print(f"error: {describe_error(err)}", file=sys.stderr)
        raise SystemExit(1) from None
    paths = Paths(db.data_dir.resolve())
    run(db, server_settings, security, paths=paths, upgrade=False, create_files=db.database_url is None)
