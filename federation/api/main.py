"""``federation-apiserver``: the API server alone, for deployments (migrations are a separate step)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from federation.api.runtime import Paths, run
from federation.settings import DatabaseSettings, SecuritySettings, ServerSettings, describe_error


def main() -> None:
    try:
        db = DatabaseSettings()
        server_settings = ServerSettings()
        security = SecuritySettings()
    except ValidationError as err:
        print(f"error: {describe_error(err)}", file=sys.stderr)
        raise SystemExit(1) from None
    paths = Paths(db.data_dir.resolve())
    run(db, server_settings, security, paths=paths, upgrade=False, create_files=db.database_url is None)
