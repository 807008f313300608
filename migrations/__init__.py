"""Alembic migrations of the Federation database, installed as ``federation.migrations``.

Run them with ``fedctl db upgrade`` or :func:`federation.store.migrate.upgrade`; there is no
``alembic.ini``: :mod:`federation.store.migrate` builds the Alembic configuration in code.
"""
