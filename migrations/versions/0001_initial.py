"""Initial schema: objects, the change log and its sequence, tokens, leases.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(name: str, *, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(collation="C"), nullable=False, primary_key=primary_key)


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("resource_version_seq", start=1)))
    op.create_table(
        "objects",
        _key("group", primary_key=True),
        _key("plural", primary_key=True),
        _key("namespace", primary_key=True),
        _key("name", primary_key=True),
        sa.Column("uid", sa.Text(), nullable=True),
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("labels", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.Text(), nullable=True),
        sa.CheckConstraint("(sealed IS NULL) = (key_id IS NULL)", name=op.f("ck_objects_sealed_has_key")),
        sa.PrimaryKeyConstraint("group", "plural", "namespace", "name", name=op.f("pk_objects")),
    )
    op.create_index(
        "ix_objects_labels",
        "objects",
        ["labels"],
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    )
    op.create_table(
        "changes",
        sa.Column("resource_version", sa.BigInteger(), autoincrement=False, nullable=False),
        _key("group"),
        _key("plural"),
        _key("namespace"),
        _key("name"),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.Text(), nullable=True),
        sa.CheckConstraint("type IN ('ADDED', 'MODIFIED', 'DELETED')", name=op.f("ck_changes_type")),
        sa.CheckConstraint("(sealed IS NULL) = (key_id IS NULL)", name=op.f("ck_changes_sealed_has_key")),
        sa.PrimaryKeyConstraint("resource_version", name=op.f("pk_changes")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'editor', 'admin')", name=op.f("ck_tokens_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("renew_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("tokens")
    op.drop_table("changes")
    op.drop_index("ix_objects_labels", table_name="objects")
    op.drop_table("objects")
    op.execute(sa.schema.DropSequence(sa.Sequence("resource_version_seq")))
