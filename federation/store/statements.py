"""The SQL text of :class:`~federation.store.postgres.PostgresStorage`, and nothing else.

Kept apart so the statements can be read (and benchmarked: ``tests/bench/api.py`` runs the create
through pgbench) without the Python around them. What they guarantee together with the writer in
:mod:`federation.store.group_commit`:

* Every write runs inside a transaction that holds the advisory lock :data:`WRITE_LOCK_KEY` from
  before ``nextval('resource_version_seq')`` until its commit, so version order is commit order.
* Each write statement checks its precondition (absent for create; present, with the expected
  version when one is given, for update and delete) in the same statement that takes ``nextval``,
  so a refused write neither writes a row nor burns a version. It writes the object row and the
  ``changes`` row together, carrying the sealed columns unchanged.
* Each statement returns what tells the caller which precondition failed: :data:`CREATE` no row
  when the name is taken; :data:`UPDATE` and :data:`DELETE` no row when the object is absent, and a
  NULL new version when the expected version did not match.
* Reads of a list run in one REPEATABLE READ snapshot with :data:`VERSION`, the version the list
  reflects.
"""

from __future__ import annotations

import functools

CHANNEL = "federation_changes"
"""The NOTIFY channel every write transaction signals on (no payload: the feed reads ``changes``)."""

WRITE_LOCK_KEY = int.from_bytes(b"fedwrite", "big")
"""The advisory lock every write transaction holds from before ``nextval`` until it commits."""

_PK = '"group" = %(group)s AND plural = %(plural)s AND namespace = %(namespace)s AND name = %(name)s'
_OBJECTS_PK = (
    'objects."group" = %(group)s AND objects.plural = %(plural)s'
    " AND objects.namespace = %(namespace)s AND objects.name = %(name)s"
)

BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
LOCK = f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"
NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"
FENCE = "SELECT federation_fence(%(lease)s, %(holder)s)"
"""A fenced writer's check that its holder still holds the lease (migrations 0002, 0003)."""
LISTEN = f"LISTEN {CHANNEL}"

CREATE = f"""
WITH v AS (
    SELECT nextval('resource_version_seq') AS rv
    WHERE NOT EXISTS (SELECT 1 FROM objects WHERE {_PK})
), o AS (
    INSERT INTO objects
        ("group", plural, namespace, name, uid, resource_version, labels, body, sealed, key_id)
    SELECT %(group)s, %(plural)s, %(namespace)s, %(name)s, %(uid)s::text, v.rv,
           %(labels)s::jsonb, %(body)s::jsonb, %(sealed)s::bytea, %(key_id)s::text
    FROM v
    RETURNING resource_version, body, sealed, key_id
), c AS (
    INSERT INTO changes (resource_version, "group", plural, namespace, name, type, body, sealed, key_id)
    SELECT o.resource_version, %(group)s, %(plural)s, %(namespace)s, %(name)s, 'ADDED', o.body, o.sealed,
           o.key_id
    FROM o
)
SELECT o.resource_version FROM o
"""

UPDATE = f"""
WITH cur AS (
    SELECT resource_version FROM objects WHERE {_PK}
), v AS (
    SELECT nextval('resource_version_seq') AS rv FROM cur
    WHERE %(precondition)s::bigint IS NULL OR cur.resource_version = %(precondition)s::bigint
), o AS (
    UPDATE objects SET uid = %(uid)s::text, resource_version = v.rv, labels = %(labels)s::jsonb,
                       body = %(body)s::jsonb, sealed = %(sealed)s::bytea, key_id = %(key_id)s::text
    FROM v
    WHERE {_OBJECTS_PK}
    RETURNING objects.resource_version, objects.body, objects.sealed, objects.key_id
), c AS (
    INSERT INTO changes (resource_version, "group", plural, namespace, name, type, body, sealed, key_id)
    SELECT o.resource_version, %(group)s, %(plural)s, %(namespace)s, %(name)s, 'MODIFIED', o.body, o.sealed,
           o.key_id
    FROM o
)
SELECT cur.resource_version, o.resource_version FROM cur LEFT JOIN o ON true
"""

DELETE = f"""
WITH cur AS (
    SELECT resource_version, body, sealed, key_id FROM objects WHERE {_PK}
), v AS (
    SELECT nextval('resource_version_seq') AS rv FROM cur
    WHERE %(precondition)s::bigint IS NULL OR cur.resource_version = %(precondition)s::bigint
), d AS (
    DELETE FROM objects USING v WHERE {_OBJECTS_PK} RETURNING v.rv
), c AS (
    INSERT INTO changes (resource_version, "group", plural, namespace, name, type, body, sealed, key_id)
    SELECT d.rv, %(group)s, %(plural)s, %(namespace)s, %(name)s, 'DELETED', cur.body, cur.sealed, cur.key_id
    FROM d, cur
)
SELECT cur.resource_version, cur.body, cur.sealed, cur.key_id, d.rv FROM cur LEFT JOIN d ON true
"""

GET = f"SELECT resource_version, body, sealed, key_id FROM objects WHERE {_PK}"
COUNT = (
    'SELECT count(*) FROM objects WHERE "group" = %(group)s AND plural = %(plural)s'
    " AND namespace = %(namespace)s"
)
VERSION = "SELECT coalesce(max(resource_version), 0) FROM changes"

CHANGE_COLUMNS = 'resource_version, "group", plural, namespace, name, type, body, sealed, key_id'
"""The columns of a ``changes`` row, in the order :meth:`RowCodec.change` reads them."""
CHANGES_AFTER = (
    f"SELECT {CHANGE_COLUMNS} FROM changes WHERE resource_version > %s ORDER BY resource_version LIMIT %s"
)
OLDEST_CHANGE = "SELECT min(resource_version) FROM changes"
NEWEST_CHANGES = (
    f"SELECT {CHANGE_COLUMNS} FROM"
    f" (SELECT {CHANGE_COLUMNS} FROM changes ORDER BY resource_version DESC LIMIT %s) newest"
    " ORDER BY resource_version"
)
COMPACT_CHANGES = (
    "DELETE FROM changes WHERE resource_version <= (SELECT max(resource_version) FROM changes) - %s"
)


@functools.cache
def list_sql(*, all_namespaces: bool, after: bool, labels: bool, limited: bool) -> str:
    """The query of one page (or batch) of a list: objects in (namespace, name) order."""
    where = ['"group" = %(group)s', "plural = %(plural)s"]
    if not all_namespaces:
        where.append("namespace = %(namespace)s")
    if after:
        where.append("(namespace, name) > (%(after_namespace)s, %(after_name)s)")
    if labels:
        where.append("labels @> %(labels)s::jsonb")
    query = (
        "SELECT namespace, name, resource_version, body, sealed, key_id FROM objects"
        f" WHERE {' AND '.join(where)} ORDER BY namespace, name"
    )
    return query + " LIMIT %(limit)s" if limited else query
