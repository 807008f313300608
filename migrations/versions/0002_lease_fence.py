"""Fencing for the controllers' lease: a write of a controller that lost its lease fails.

``federation_fence(lease, holder)`` raises SQLSTATE ``P0F01`` (class P0, PL/pgSQL) unless ``holder``
holds ``lease`` now (by the database's clock). A leading controller's write transactions call it
first, holding the lease row ``FOR SHARE``, so a new leader's takeover (an UPDATE of that row) waits
for them: each write of the old leader either commits before the takeover or fails
(federation/store/leases.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION federation_fence(lease text, who text) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM leases
             WHERE name = lease AND holder = who
               AND renew_time + make_interval(secs => duration_seconds) > clock_timestamp()
               FOR SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'lease % is not held by %', lease, who USING ERRCODE = 'P0F01';
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION federation_fence(text, text)")
