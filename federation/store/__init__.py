"""Federation's storage in Postgres: what the API server, the controllers and the CLI import.

* :class:`PostgresStorage`: the :class:`~federation.apimachinery.storage.Storage` of the federation.
* :func:`make_engine` / :func:`database_url`: the one way to connect.
* :class:`EmbeddedPostgres`: a server of our own in the data dir when no database URL is set.
* :class:`Sealer`: encryption at rest of Secret data and cluster credentials.
* :class:`TokenStore`: API bearer tokens.
* :class:`LeaseStore`, :class:`Fence`, :class:`Fenced`: the controllers' leader election with fencing.
* :mod:`federation.store.migrate`: ``upgrade``/``downgrade``/``current`` of the schema.
"""

from federation.apimachinery import ROLES, Role
from federation.store import migrate
from federation.store.embedded import EmbeddedPostgres, client_bin_dir
from federation.store.engine import database_url, make_engine
from federation.store.leases import Fence, Fenced, LeaseRenewer, LeaseState, LeaseStore
from federation.store.postgres import PostgresStorage
from federation.store.sealing import (
    Sealer,
    SealingError,
    UnknownKeyError,
    generate_key_file,
    generate_key_material,
    identity_aad,
)
from federation.store.tokens import TokenInfo, TokenStore

__all__ = [
    "ROLES",
    "EmbeddedPostgres",
    "Fence",
    "Fenced",
    "LeaseRenewer",
    "LeaseState",
    "LeaseStore",
    "PostgresStorage",
    "Role",
    "Sealer",
    "SealingError",
    "TokenInfo",
    "TokenStore",
    "UnknownKeyError",
    "client_bin_dir",
    "database_url",
    "generate_key_file",
    "generate_key_material",
    "identity_aad",
    "make_engine",
    "migrate",
]
