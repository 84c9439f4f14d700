"""Alembic environment of the review database: run by annotations.store.Store on the connection
it opened (``config.attributes["connection"]``); never reads an alembic.ini."""

from alembic import context

from annotations.schema import Base

connection = context.config.attributes["connection"]
# Batch mode lets the same revision alter tables on SQLite (which rebuilds the table) and on
# PostgreSQL (which alters it in place).
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
