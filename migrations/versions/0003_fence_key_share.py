"""The lease fence holds the row FOR KEY SHARE, so the holder's own renewal never waits for its writes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

``federation_fence`` (0002) held the lease row ``FOR SHARE`` for the whole of every fenced write
transaction, and a renewal (an ``UPDATE``) waits for every such lock: at 100 clusters, with write
transactions left open while the controllers' event loop was held up, the leader's renewals timed
out and the lease lapsed. ``FOR KEY SHARE`` does not conflict with an ``UPDATE`` that leaves the key
alone (a renewal or a release); a takeover locks the row ``FOR UPDATE`` first
(:meth:`federation.store.LeaseStore.acquire`), which still waits for the old leader's writes in
flight, so each of them either commits before the takeover or fails with ``Fenced``, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FENCE = """
    CREATE OR REPLACE FUNCTION federation_fence(lease text, who text) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM leases
         WHERE name = lease AND holder = who
           AND renew_time + make_interval(secs => duration_seconds) > clock_timestamp()
           FOR {mode};
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lease % is not held by %', lease, who USING ERRCODE = 'P0F01';
        END IF;
    END
    $$
"""


def upgrade() -> None:
    op.execute(_FENCE.format(mode="KEY SHARE"))


def downgrade() -> None:
    op.execute(_FENCE.format(mode="SHARE"))
