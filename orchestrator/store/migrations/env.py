"""Alembic environment: runs on the connection handed in by `orchestrator.store.db.migrate`."""

from alembic import context

from orchestrator.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line: build an engine from the ini's URL
    from orchestrator.store.db import connect

    engine = connect(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect().execution_options(orch_write=True) as connection, connection.begin():
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
