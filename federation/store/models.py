"""The database schema, described once with SQLAlchemy Core.

These tables are what the Alembic migrations in ``migrations/`` create; a test compares the two, so a
column added here without a migration (or the other way round) fails the build. Nothing calls
``create_all``: the schema exists only through migrations.

* ``objects``: the current state, one row per object. ``body`` is the object without its sealed
  fields and without ``metadata.resourceVersion`` (that is the ``resource_version`` column, put back
  on read); ``sealed`` holds the AES-GCM ciphertext of the sealed fields and ``key_id`` the key that
  sealed them. ``namespace`` is ``''`` for cluster-scoped kinds. Text keys use the "C" collation so
  Postgres orders (namespace, name) exactly as Python orders strings.
* ``changes``: the change log watches are served from, one row per version, compacted to a window.
* ``resource_version_seq``: the single source of resource versions.
* ``tokens``: API bearer tokens, stored only as sha256 hex digests.
* ``leases``: leader election for the controllers.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ROLES = ("viewer", "editor", "admin")
CHANGE_TYPES = ("ADDED", "MODIFIED", "DELETED")

resource_version_seq = Sequence("resource_version_seq", metadata=metadata, start=1)


def _key(name: str, *, primary_key: bool = False) -> Column[str]:
    return Column(name, Text(collation="C"), nullable=False, primary_key=primary_key)


objects = Table(
    "objects",
    metadata,
    _key("group", primary_key=True),
    _key("plural", primary_key=True),
    _key("namespace", primary_key=True),
    _key("name", primary_key=True),
    Column("uid", Text, nullable=True),
    Column("resource_version", BigInteger, nullable=False),
    Column("labels", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("body", JSONB, nullable=False),
    Column("sealed", LargeBinary, nullable=True),
    Column("key_id", Text, nullable=True),
    CheckConstraint("(sealed IS NULL) = (key_id IS NULL)", name="sealed_has_key"),
    Index("ix_objects_labels", "labels", postgresql_using="gin", postgresql_ops={"labels": "jsonb_path_ops"}),
)

changes = Table(
    "changes",
    metadata,
    Column("resource_version", BigInteger, primary_key=True, autoincrement=False),
    _key("group"),
    _key("plural"),
    _key("namespace"),
    _key("name"),
    Column("type", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("sealed", LargeBinary, nullable=True),
    Column("key_id", Text, nullable=True),
    CheckConstraint("type IN ('ADDED', 'MODIFIED', 'DELETED')", name="type"),
    CheckConstraint("(sealed IS NULL) = (key_id IS NULL)", name="sealed_has_key"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('viewer', 'editor', 'admin')", name="role"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("renew_time", DateTime(timezone=True), nullable=False),
    Column("duration_seconds", Integer, nullable=False),
)
