"""``federation-apiserver``: the API server alone, for deployments (migrations are a separate step)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from federation.api.runtime import Paths, database, run_forever, serve
from federation.settings import DatabaseSettings, SecuritySettings, ServerSettings, describe_error
from federation.store import migrate


def main() -> None:
    try:
        db = DatabaseSettings()
        server_settings = ServerSettings()
        security = SecuritySettings()
    except ValidationError as err:
        print(f"error: {describe_error(err)}", file=sys.stderr)
        raise SystemExit(1) from None
    if server_settings.insecure_http and not server_settings.is_loopback():
        print("note: serving plain HTTP; only do this behind a TLS-terminating proxy", file=sys.stderr)
    paths = Paths(db.data_dir.resolve())
    with database(db, paths) as url:
        if migrate.current(url) != migrate.head():
            print("error: the database schema is not current; run `fedctl db upgrade` first", file=sys.stderr)
            raise SystemExit(1)
        run_forever(
            serve(
                url=url,
                paths=paths,
                server_settings=server_settings,
                security=security,
                create_files=db.database_url is None,
                watch_window=db.watch_window,
            )
        )
